"""The internal history topic's record: a valid event routed to its citizen, without the CPR.

The router writes one record per valid input record, keyed by the citizen's
pseudonym; the store writers read them. A record holds the pseudonym, the birth
date (a citizen's first record registers them), the CPR sealed under the
citizen's own key (empty for a forgotten citizen), and the fact in its stored
form with its content hash and provenance (where on the input topic it came
from). With the citizen's key destroyed, nothing on the topic names them.

Value: UTF-8 JSON, `{"v": 1, ...}`, encrypted with the store key when the
engine has one (as the event store's records are: the topic then shows only
pseudonyms, sizes and times); the key: the pseudonym (32 hex digits).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import orjson

from casehistory.domain.citizen import CHAINED_FIELDS, fact_content, recorded_fact
from casehistory.domain.facts import EventType, Fact

VERSION = 1


@dataclass(frozen=True, slots=True)
class Routed:
    """A valid event bound for a citizen's history: the pseudonym, never the CPR."""

    citizen_key: str
    birth_date: date
    fact: Fact
    content_hash: str
    provenance: dict[str, Any]
    stored: dict[str, Any] | None = field(default=None, compare=False, repr=False)
    """The fact's stored fields (`fact_content`) when the record carried them, as a
    history record does: the store writer then need not derive them again."""


class Cipher(Protocol):
    def encrypt(self, plaintext: bytes) -> bytes: ...

    def decrypt(self, ciphertext: bytes) -> bytes: ...


class UnreadableHistoryRecord(ValueError):
    """A history-topic record that is not one this version writes."""


def encode(routed: Routed, sealed_cpr: str, cipher: Cipher | None = None) -> bytes:
    data = orjson.dumps({
        "v": VERSION,
        "citizen_key": routed.citizen_key,
        "birth_date": routed.birth_date.isoformat(),
        "sealed_cpr": sealed_cpr,
        "event_type": routed.fact.event_type.value,
        "fact": fact_content(routed.fact, routed.content_hash, routed.provenance),
    })
    return data if cipher is None else cipher.encrypt(data)


def decode(value: bytes, cipher: Cipher | None = None) -> tuple[Routed, str]:
    """The routed event and the sealed CPR a history record holds."""
    try:
        data = orjson.loads(value if cipher is None else cipher.decrypt(value))
        if data.get("v") != VERSION:
            raise UnreadableHistoryRecord(f"history record version {data.get('v')!r}")
        state = data["fact"]
        routed = Routed(
            data["citizen_key"],
            date.fromisoformat(data["birth_date"]),
            recorded_fact(EventType(data["event_type"]), state),
            state["content_hash"],
            state["provenance"],
            # Exactly the fields `encode` writes, else they are derived from the fact again.
            state if tuple(state) == CHAINED_FIELDS["FactRecorded"] else None,
        )
        return routed, str(data["sealed_cpr"])
    except UnreadableHistoryRecord:
        raise
    except Exception as error:  # any garbage, a wrong key (InvalidTag) included
        raise UnreadableHistoryRecord(f"{type(error).__name__}: {error}") from None
