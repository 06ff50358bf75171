"""Processes starting at once on a fresh PostgreSQL database create each table once.

`CREATE TABLE IF NOT EXISTS` races on PostgreSQL (both sessions find the table
missing; one fails on the catalog's unique index), which once failed a Kafka
consumer whose group member was opening the key store at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from casehistory.services.access import LookupLog
from casehistory.services.identity import PostgresKeyStore
from casehistory.settings import Settings
from tests.conftest import PSEUDONYM_KEY

pytestmark = pytest.mark.postgres

STARTERS = 6


def start_at_once(open_service: Callable[[], Any]) -> None:
    """Open the service from STARTERS threads released together; every one must succeed."""
    barrier = threading.Barrier(STARTERS)

    def open_after_barrier() -> Any:
        barrier.wait()
        return open_service()

    with ThreadPoolExecutor(STARTERS) as pool:
        services = list(pool.map(lambda _: open_after_barrier(), range(STARTERS)))
    for service in services:
        service.close()


def test_key_stores_opened_at_once_all_open(postgres_dsn: str) -> None:
    start_at_once(lambda: PostgresKeyStore(postgres_dsn))
    store = PostgresKeyStore(postgres_dsn)
    store.add({"a" * 32: b"k" * 32})
    assert store.keys_for(["a" * 32]) == {"a" * 32: b"k" * 32}
    store.close()


def test_lookup_logs_opened_at_once_all_open(postgres_dsn: str, tmp_path: Path) -> None:
    settings = Settings.load({"CASEHISTORY_DATA_DIR": str(tmp_path),
                              "CASEHISTORY_PSEUDONYM_KEY": PSEUDONYM_KEY,
                              "CASEHISTORY_STORE": postgres_dsn})
    start_at_once(lambda: LookupLog(settings))
