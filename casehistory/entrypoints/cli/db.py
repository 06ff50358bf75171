"""`casehistory db`: create the engine's tables as their owner, and least-privilege roles.

`db init` builds the engine with table creation on and opens every read model,
so the DDL is the engine's own. `db roles` prints (or with `--apply` runs) SQL
for three NOLOGIN roles; grant them to login users and run engine processes
with `CASEHISTORY_CREATE_TABLES=no`. Run both again after adding a read model.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from typing import Any

from casehistory.application import CaseHistory
from casehistory.bootstrap import build
from casehistory.entrypoints.cli.common import console
from casehistory.projections.rows import TABLES
from casehistory.projections.store import OUTBOX_TABLE, TRACKING_TABLE
from casehistory.recorders import FENCE_TABLE, HEADS_TABLE, INDEX_TABLE, LEDGER_TABLE
from casehistory.services.anchors import ANCHORS_TABLE
from casehistory.settings import Settings

INGEST = "casehistory_ingest"
PROJECTION = "casehistory_projection"
DASHBOARD = "casehistory_dashboard"
ROLES = (INGEST, PROJECTION, DASHBOARD)
SCHEMA = "public"
"""eventsourcing's default schema, where the engine's tables live."""


@dataclass(frozen=True)
class EngineTables:
    """The engine's PostgreSQL tables, named as its constructors name them."""

    events: str
    ledger: str
    keys: tuple[str, ...]
    """Empty when the key store is a database of its own (see `key_store_roles_sql`)."""
    read_models: tuple[str, ...]
    tracking: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (self.events, self.ledger, *self.keys, *self.read_models, *self.tracking)


KEY_TABLES = ("citizen_keys", "forgotten_citizens", "event_claims")


def engine_tables(own_key_store: bool = False) -> EngineTables:
    return EngineTables(
        events=f"{CaseHistory.name}_events",
        ledger=LEDGER_TABLE,
        keys=() if own_key_store else KEY_TABLES,
        read_models=tuple(TABLES),
        tracking=(TRACKING_TABLE, OUTBOX_TABLE),
    )


def _create_role(role: str) -> str:
    return (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
        f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
    )


def roles_sql(t: EngineTables, store: bool = True) -> list[str]:
    """Idempotent SQL statements for the three roles and their grants (tables must exist).

    Without `store` (partition groups' stores all in schemas of their own, see
    `group_roles_sql`), only the keys, read models and tracking tables here."""
    guard = f"{t.events}_append_only"
    common = [
        *(_create_role(role) for role in ROLES),
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {', '.join(ROLES)}",
        *([f"-- ingest: new citizens' keys\nGRANT SELECT, INSERT ON {', '.join(t.keys)} "
           f"TO {INGEST}"] if t.keys else []),
        "-- projection: write read models and their tracking positions\n"
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(t.read_models + t.tracking)} "
        f"TO {PROJECTION}",
        "-- dashboard: read the read models, nothing else\n"
        f"GRANT SELECT ON {', '.join(t.read_models)} TO {DASHBOARD}",
    ]
    if not store:
        return common
    return [
        *common,
        "-- ingest: append events and the ledger; read them back\n"
        f"GRANT SELECT, INSERT ON {t.events}, {t.ledger} TO {INGEST}",
        f"GRANT USAGE ON SEQUENCE {t.events}_notification_id_seq TO {INGEST}",
        "-- ingest: move each appended citizen's anchored chain head (keyed: it cannot forge one)\n"
        f"GRANT SELECT, INSERT, UPDATE ON {ANCHORS_TABLE} TO {INGEST}",
        "-- ingest: append from each citizen's head; idempotency by the event index\n"
        f"GRANT SELECT, INSERT, UPDATE ON {HEADS_TABLE} TO {INGEST}",
        f"GRANT SELECT, INSERT ON {INDEX_TABLE} TO {INGEST}",
        "-- ingest: take partitions over (bump their writer generation), fencing a zombie\n"
        f"GRANT SELECT, INSERT, UPDATE ON {FENCE_TABLE} TO {INGEST}",
        "-- eventsourcing takes LOCK TABLE ... IN EXCLUSIVE MODE on the events table on every\n"
        "-- insert, which PostgreSQL allows only with table-level UPDATE, DELETE or TRUNCATE.\n"
        "-- UPDATE is the least of them, and the trigger below refuses every UPDATE.\n"
        f"GRANT UPDATE ON {t.events} TO {INGEST}",
        f"CREATE OR REPLACE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$",
        f"DROP TRIGGER IF EXISTS {guard} ON {t.events}",
        f"CREATE TRIGGER {guard} BEFORE UPDATE ON {t.events} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {guard}()",
        "-- projection: read events\n"
        f"GRANT SELECT ON {t.events} TO {PROJECTION}",
    ]


def group_roles_sql(schema: str) -> list[str]:
    """The grants on a partition group's event store in its own schema (ingest appends,
    projection reads), with the same append-only trigger; idempotent."""
    s = f'"{schema}"'
    events = f"{s}.{CaseHistory.name}_events"
    guard = f"{s}.{CaseHistory.name}_events_append_only"
    return [
        *(_create_role(role) for role in (INGEST, PROJECTION)),
        f"GRANT USAGE ON SCHEMA {s} TO {INGEST}, {PROJECTION}",
        f"GRANT SELECT, INSERT ON {events}, {s}.{LEDGER_TABLE}, {s}.{INDEX_TABLE} TO {INGEST}",
        f"GRANT USAGE ON SEQUENCE {events}_notification_id_seq TO {INGEST}",
        f"GRANT SELECT, INSERT, UPDATE ON {s}.{ANCHORS_TABLE}, {s}.{HEADS_TABLE}, "
        f"{s}.{FENCE_TABLE} TO {INGEST}",
        f"GRANT UPDATE ON {events} TO {INGEST}",  # the table lock (see roles_sql)
        f"CREATE OR REPLACE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$",
        f'DROP TRIGGER IF EXISTS "{CaseHistory.name}_events_append_only" ON {events}',
        f'CREATE TRIGGER "{CaseHistory.name}_events_append_only" BEFORE UPDATE ON {events} '
        f"FOR EACH STATEMENT EXECUTE FUNCTION {guard}()",
        f"GRANT SELECT ON {events} TO {PROJECTION}",
    ]


def group_schemas(settings: Settings) -> list[tuple[str, str]]:
    """(database URL, schema) of each partition group's store outside `public`."""
    return [
        (location.url, location.schema)
        for location in map(settings.group_store, range(settings.store_groups))
        if location.uses_postgres and location.schema != SCHEMA
    ]


def key_store_roles_sql() -> list[str]:
    """The grants in a key store of its own: ingest adds keys; no other engine role enters."""
    return [
        _create_role(INGEST),
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {INGEST}",
        f"GRANT SELECT, INSERT ON {', '.join(KEY_TABLES)} TO {INGEST}",
    ]


def apply_roles(
    url: str, key_store_url: str | None = None, groups: list[tuple[str, str]] | None = None
) -> None:
    """Create the roles and grants, each database in one transaction (`groups`: the
    partition groups' stores, as (URL, schema), each on its own server or not)."""
    import psycopg

    tables = engine_tables(own_key_store=key_store_url is not None)
    with psycopg.connect(url) as connection:
        for statement in roles_sql(tables, store=not groups):
            connection.execute(statement)
    for group_url, schema in groups or []:
        with psycopg.connect(group_url) as connection:
            for statement in group_roles_sql(schema):
                connection.execute(statement)
    if key_store_url is not None:
        with psycopg.connect(key_store_url) as connection:
            for statement in key_store_roles_sql():
                connection.execute(statement)


def cmd_init(args: argparse.Namespace) -> int:
    engine = build(replace(Settings.load(), create_tables=True))
    try:
        engine.read_model()
        _ = engine.lookup_log  # opening it creates the lookup log (no engine role is granted it)
    finally:
        engine.close()
    own = engine.settings.key_store is not None
    console.print(f"engine tables ready: {', '.join(engine_tables(own_key_store=own).all)}")
    return 0


def cmd_roles(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if not args.apply:
        own = settings.key_store is not None
        groups = group_schemas(settings)
        print(";\n".join(roles_sql(engine_tables(own_key_store=own), store=not groups)) + ";")
        for url, schema in groups:
            server = url.rsplit("@", 1)[-1]
            print(f"-- partition group store {schema} (on {server})\n"
                  + ";\n".join(group_roles_sql(schema)) + ";")
        if own:
            print("-- in the key store's database\n" + ";\n".join(key_store_roles_sql()) + ";")
        return 0
    if not settings.uses_postgres:
        raise SystemExit("db roles --apply needs CASEHISTORY_STORE=postgresql://...")
    apply_roles(settings.store, settings.key_store, group_schemas(settings))
    console.print(f"roles ready: {', '.join(ROLES)} (grant them to login users)")
    return 0


def add_parsers(sub: Any) -> None:
    db = sub.add_parser("db", help="set up a PostgreSQL server: tables and roles")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    init = db_sub.add_parser("init", help="create every engine table as the connecting owner")
    init.set_defaults(func=cmd_init)
    roles = db_sub.add_parser("roles", help="print the SQL for the least-privilege roles")
    roles.add_argument("--apply", action="store_true", help="run it against CASEHISTORY_STORE")
    roles.set_defaults(func=cmd_roles)
