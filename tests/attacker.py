"""The attacker who reads stored rows: what can they learn about who a citizen is?

Given every row they can read (and any keys they hold), the attacker looks for
CPR numbers in clear and tries the known inversions: for each birth date seen,
the 20,000 CPR numbers of that date (ordinary and substitute) against every
digest in the rows: a content digest over the contract record with the CPR in
it, a plain digest of the CPR, and (holding the pseudonym key) the pseudonym.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from casehistory.domain.canonical import canonical_ascii_json

_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TEN_DIGITS = re.compile(rb"(?<!\d)\d{10}(?!\d)")


def sqlite_rows(path: Path) -> Iterator[dict[str, Any]]:
    """Every row of every table of a SQLite file."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                yield {"_table": table, **dict(row)}


def postgres_rows(dsn: str) -> Iterator[dict[str, Any]]:
    """Every row of every table the connecting user may read (its grants)."""
    with psycopg.connect(dsn) as db:
        tables = db.execute(
            "SELECT schemaname, tablename FROM pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
            "AND has_table_privilege(format('%I.%I', schemaname, tablename), 'SELECT')"
        ).fetchall()
        for schema, table in tables:
            with db.cursor(row_factory=psycopg.rows.dict_row) as cursor:
                for row in cursor.execute(f'SELECT * FROM "{schema}"."{table}"'):
                    yield {"_table": table, **row}


def _decoded(value: Any, store_key: bytes | None) -> Any:
    """A stored value as JSON if the attacker can read it as such, else as it is."""
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, bytes):
        if store_key is not None and len(value) > 28:
            try:
                nonce, tag, body = value[:12], value[12:28], value[28:]
                value = AESGCM(store_key).decrypt(nonce, body + tag, None)
            except Exception:
                pass
        try:
            return json.loads(value)
        except ValueError:
            return value
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def candidates(born: date) -> Iterator[str]:
    """Every CPR number (ordinary and substitute) of a birth date."""
    yy = born.year % 100
    for day in (born.day, born.day + 60):
        for serial in range(10_000):
            yield f"{day:02d}{born.month:02d}{yy:02d}{serial:04d}"


def _contract_record(state: dict[str, Any], kind: str, cpr: str) -> dict[str, Any]:
    record = {
        "event_id": state["event_id"],
        "event_type": kind,
        "cpr": cpr,
        "effective_date": state["effective_date"],
        "recorded_at": state["recorded_at"].replace("+00:00", "Z"),
        "source_system": state["source_system"],
        "municipality": state["municipality"],
        **state["details"],
    }
    if state.get("source_case_ref") is not None:
        record["source_case_ref"] = state["source_case_ref"]
    return record


def recovered_cprs(
    rows: Iterable[dict[str, Any]],
    *,
    store_key: bytes | None = None,
    pseudonym_key: bytes | None = None,
    known: Iterable[str] = (),
) -> set[str]:
    """The CPR numbers the attacker learns from `rows` (and the keys they hold).

    `known` are the CPR numbers really in the data: any of them seen in clear in a
    row's text counts as learnt. Rows are grouped by their citizen (the
    `originator_id` or `citizen_key` column), so each citizen's birth date is
    tried against that citizen's own digests.
    """
    known = set(known)
    learnt: set[str] = set()
    births: dict[str, set[date]] = {}
    digests: dict[str, set[str]] = {}
    facts: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for row in rows:
        owner = str(row.get("originator_id", row.get("citizen_key", "")))
        for column, raw in row.items():
            blob = raw if isinstance(raw, bytes | memoryview) else str(raw).encode()
            learnt |= {m.decode() for m in _TEN_DIGITS.findall(bytes(blob))} & known
            value = _decoded(raw, store_key)
            for part in _walk(value):
                if isinstance(part, str) and len(part) in (32, 64):
                    digests.setdefault(owner, set()).add(part)
                if isinstance(part, str) and (m := _DATE.match(part)) and "birth" in str(column):
                    births.setdefault(owner, set()).add(date(int(m[1]), int(m[2]), int(m[3])))
                if isinstance(part, dict):
                    if isinstance(part.get("birth_date"), str):
                        births.setdefault(owner, set()).add(date.fromisoformat(part["birth_date"]))
                    if "content_hash" in part and "details" in part:
                        kind = str(row.get("topic", "")).rsplit(".", 1)[-1]
                        facts.setdefault(owner, []).append((kind, part))
    everything = set().union(*digests.values()) if digests else set()
    for owner, dates in births.items():
        for born in dates:
            for cpr in candidates(born):
                if hashlib.sha256(cpr.encode()).hexdigest() in everything:
                    learnt.add(cpr)
                if pseudonym_key is not None:
                    pseudonym = hmac.new(pseudonym_key, cpr.encode(), hashlib.sha256).hexdigest()
                    if pseudonym[:32] in everything:
                        learnt.add(cpr)
            for kind, state in facts.get(owner, [])[:1]:
                for cpr in candidates(born):
                    record = _contract_record(state, kind, cpr)
                    digest = hashlib.sha256(canonical_ascii_json(record)).hexdigest()
                    if digest == state["content_hash"]:
                        learnt.add(cpr)
                        break
    return learnt


def encoded(key: bytes) -> str:
    return base64.b64encode(key).decode()
