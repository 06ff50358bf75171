"""Dead letters: rejected input kept whole with the reason, never lost.

Error policy for every source: a record that cannot be decoded or validated, or
whose event id conflicts with an earlier one, goes to a dead-letter sink with
its original bytes and provenance; it never stops the consumer.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class DeadLetter:
    raw: bytes
    reason: str
    message: str
    provenance: dict[str, Any]
    field: str | None = None
    error_class: str = "ValidationError"
    key: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()

    def to_json(self) -> dict[str, Any]:
        try:
            original: dict[str, Any] = {"record": self.raw.decode("utf-8")}
        except UnicodeDecodeError:
            original = {"record_base64": base64.b64encode(self.raw).decode("ascii")}
        return {
            "reason": self.reason,
            "message": self.message,
            "field": self.field,
            "error_class": self.error_class,
            "provenance": self.provenance,
            **original,
        }


class DeadLetterSink(Protocol):
    def put(self, letters: list[DeadLetter]) -> None: ...


class DeadLetterFile:
    """Appends dead letters as JSON Lines to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def put(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Owner-only from the first byte (letters hold raw CPRs); stamped for the retention.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        stamp = datetime.now(UTC).isoformat()
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            for letter in letters:
                line = {**letter.to_json(), "dead_lettered_at": stamp}
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")


class DeadLetterList:
    """Keeps dead letters in memory (for a demo run and for tests)."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def put(self, letters: list[DeadLetter]) -> None:
        self.letters.extend(letters)
