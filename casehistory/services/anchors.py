"""Tamper evidence against a writer: each citizen's keyed chain head, anchored beside the events.

Every stored record of a citizen extends a keyed chain, HMAC-SHA256 under the
integrity key over the previous link, the citizen, the version, the topic and
a digest of the stored bytes. Only the newest link (the head) is kept, in the
`chain_anchors` table, written in the transaction that appends the records.
Someone who can write the database but does not hold the integrity key can
neither recompute a head after altering, inserting, reordering or removing a
record (the newest included), nor make one for a record they add: `verify`
recomputes every chain from the stored records and compares it with its anchor.
What an anchor cannot show is a rollback of both a citizen's newest records and
its anchor row to an earlier copy; docs/privacy.md says what covers that.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent

from casehistory.application import CaseHistory
from casehistory.recorders import PostgresLedgerRecorder, SQLiteLedgerRecorder, without_rowid
from casehistory.services.verify import ChainProblem

ANCHORS_TABLE = "chain_anchors"
ANCHORS_COLUMNS = (("citizen_id", "text"), ("version", "bigint"), ("head", "text"))


def _anchors_ddl(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(citizen_id TEXT PRIMARY KEY, version BIGINT NOT NULL, head TEXT NOT NULL)"
    )


def next_link(
    key: bytes, previous: str, citizen: str, version: int, topic: str, state: bytes
) -> str:
    """The keyed chain's link for one stored record."""
    message = f"{previous}|{citizen}|{version}|{topic}|".encode() + hashlib.sha256(state).digest()
    return hmac.digest(key, message, "sha256").hex()


class AnchorMixin:
    """Extends each appended citizen's keyed chain and stores its new head."""

    anchor_key: bytes | None = None
    """The integrity key; set by the bootstrap (None: nothing is anchored)."""
    anchors_table = ANCHORS_TABLE
    """The table's name as written in SQL (on PostgreSQL, in the store's schema)."""
    ledger_marker: str

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        # Written first, read after: on SQLite a deferred transaction that reads, then
        # writes, fails on a busy store.
        result = super()._insert_events(c, stored_events, **kwargs)  # type: ignore[misc]
        self._anchor(c, stored_events)
        return result

    def _anchor(self, c: Any, stored_events: Sequence[StoredEvent]) -> None:
        if not self.anchor_key or not stored_events:
            return
        citizens = {i: str(i) for i in dict.fromkeys(e.originator_id for e in stored_events)}
        heads = self._anchors(c, sorted(citizens.values()))
        for event in stored_events:
            citizen = citizens[event.originator_id]
            previous = heads.get(citizen, (0, ""))[1]
            heads[citizen] = (
                event.originator_version,
                next_link(
                    self.anchor_key, previous, citizen, event.originator_version,
                    event.topic, event.state,
                ),
            )
        self._insert_rows(  # type: ignore[attr-defined]
            c, self.anchors_table, ANCHORS_COLUMNS,
            [(citizen, *heads[citizen]) for citizen in sorted(citizens.values())],
            " ON CONFLICT (citizen_id) DO UPDATE SET version = excluded.version, "
            "head = excluded.head",
        )

    def _anchors(self, c: Any, citizens: list[str]) -> dict[str, tuple[int, str]]:
        rows = self._where_in(  # type: ignore[attr-defined]
            c, f"SELECT citizen_id, version, head FROM {self.anchors_table}", "citizen_id",
            citizens,
        )
        return {citizen: (int(version), head) for citizen, version, head in rows}

    def anchors(self) -> dict[str, tuple[int, str]]:
        """Every citizen's anchored (version, head)."""
        with self.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute(f"SELECT citizen_id, version, head FROM {self.anchors_table}")
            rows = c.fetchall()
        found = {}
        for row in rows:
            citizen, version, head = tuple(row.values()) if isinstance(row, dict) else row
            found[citizen] = (int(version), head)
        return found


class SQLiteAnchoredRecorder(AnchorMixin, SQLiteLedgerRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            without_rowid(_anchors_ddl(ANCHORS_TABLE)),
        ]


class PostgresAnchoredRecorder(AnchorMixin, PostgresLedgerRecorder):  # type: ignore[misc]
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        from psycopg.sql import SQL, Identifier

        super().__init__(datastore, **kwargs)
        self.anchors_table = SQL("{}.{}").format(
            Identifier(datastore.schema), Identifier(ANCHORS_TABLE)
        ).as_string(None)
        self.sql_create_statements.append(SQL(_anchors_ddl(self.anchors_table)))  # type: ignore[arg-type]


def verify_anchors(app: CaseHistory, key: bytes, batch_size: int = 5000) -> Iterator[ChainProblem]:
    """Each citizen whose stored records do not lead to its anchored head, and why."""
    recorder: Any = app.recorder
    heads: dict[str, tuple[int, str]] = {}
    start = 0
    while notifications := recorder.select_notifications(
        start=start, limit=batch_size, inclusive_of_start=False
    ):
        for n in notifications:
            citizen = str(n.originator_id)
            previous = heads.get(citizen, (0, ""))[1]
            link = next_link(key, previous, citizen, n.originator_version, n.topic, n.state)
            heads[citizen] = (max(n.originator_version, heads.get(citizen, (0, ""))[0]), link)
        start = notifications[-1].id
    anchored = recorder.anchors()
    for citizen in sorted(heads.keys() | anchored.keys()):
        stored = heads.get(citizen)
        anchor = anchored.get(citizen)
        if anchor is None:
            yield ChainProblem(citizen, stored[0] if stored else 0, "unanchored",
                               "records with no anchored head (inserted by a writer?)")
        elif stored is None or stored[0] < anchor[0]:
            yield ChainProblem(citizen, anchor[0], "removed",
                               f"the anchor says version {anchor[0]}; the newest is missing")
        elif stored != anchor:
            yield ChainProblem(citizen, anchor[0], "altered",
                               "the keyed chain over the stored records does not reach the anchor")
