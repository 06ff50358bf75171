"""Settings from `CASEHISTORY_*` environment variables and an optional TOML file.

Precedence: environment, then the file named by `CASEHISTORY_CONFIG` (or
`casehistory.toml` in the working directory, if present), then defaults. The
embedded default needs no settings at all: SQLite files under `./.casehistory`.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from eventsourcing.utils import strtobool

PREFIX = "CASEHISTORY_"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    """Where the embedded stores, keys and dead-letter files live."""
    store: str
    """`sqlite` (files under data_dir) or a `postgresql://` URL."""
    pseudonym_key: bytes
    kafka_bootstrap: str | None
    kafka_topic: str
    kafka_dlq_topic: str
    kafka_group: str
    create_tables: bool = True
    """Whether engine processes create missing tables (no: `casehistory db init` made them)."""

    @property
    def uses_postgres(self) -> bool:
        return self.store.startswith(("postgresql://", "postgres://"))

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        file_values = _file_values(env)

        def get(name: str, default: str | None = None) -> str | None:
            return env.get(PREFIX + name.upper(), file_values.get(name, default))

        data_dir = Path(get("data_dir", ".casehistory") or ".casehistory")
        return cls(
            data_dir=data_dir,
            store=get("store", "sqlite") or "sqlite",
            pseudonym_key=_pseudonym_key(get("pseudonym_key"), get("pseudonym_key_file"), data_dir),
            kafka_bootstrap=get("kafka_bootstrap"),
            kafka_topic=get("kafka_topic", "casehistory.events.v1") or "",
            kafka_dlq_topic=get("kafka_dlq_topic", "casehistory.events.dlq") or "",
            kafka_group=get("kafka_group", "casehistory-ingest") or "",
            create_tables=strtobool(get("create_tables", "yes") or "yes"),
        )


def _file_values(env: Mapping[str, str]) -> dict[str, str]:
    path = Path(env.get(PREFIX + "CONFIG", "casehistory.toml"))
    if not path.is_file():
        return {}
    data = tomllib.loads(path.read_text("utf-8"))
    section = data.get("casehistory", data)
    return {str(k): str(v) for k, v in section.items()}


def _pseudonym_key(configured: str | None, key_file: str | None, data_dir: Path) -> bytes:
    """The configured key (hex, or a file holding it), else one kept in the data dir."""
    if configured:
        return bytes.fromhex(configured)
    if key_file:
        return bytes.fromhex(Path(key_file).read_text().strip())
    path = data_dir / "pseudonym.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())
