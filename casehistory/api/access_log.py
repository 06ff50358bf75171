"""The access log: every citizen lookup and every refusal, append-only and chained.

Each line is a JSON record holding the SHA-256 of the previous line, so an edit,
insertion or removal inside the file shows when the chain is walked (`verify`).
A citizen is named by pseudonym only; a lookup by CPR records the criterion
`cpr`, never the number. This is the read API's side of the privacy issue's
lookup log; the record's fields are the ones that log asks for.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casehistory.api.identity import Identity

GENESIS = "0" * 64


class AccessLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._last = GENESIS
        for record in self.records():
            self._last = record["hash"]

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)

    def _append(self, record: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            record = {"at": datetime.now(UTC).isoformat(), **record, "previous": self._last}
            record["hash"] = _digest(record)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._last = record["hash"]
        return record

    def lookup(
        self, who: Identity, purpose: str, citizen_key: str | None, criterion: str, shown: str
    ) -> dict[str, Any]:
        """Record that `who` looked a citizen up, why, how, and what was shown."""
        return self._append({
            "kind": "lookup", "who": who.name, "roles": sorted(who.roles), "purpose": purpose,
            "citizen_key": citizen_key, "criterion": criterion, "shown": shown,
        })

    def refusal(self, who: Identity, permission: str, path: str) -> dict[str, Any]:
        """Record that `who` asked for something its roles do not allow."""
        return self._append({
            "kind": "refused", "who": who.name, "roles": sorted(who.roles),
            "permission": permission, "path": path,
        })

    def verify(self) -> bool:
        """Whether every record's hash and link to the previous one hold."""
        previous = GENESIS
        for record in self.records():
            if record["previous"] != previous or _digest(record) != record["hash"]:
                return False
            previous = record["hash"]
        return True


def _digest(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
