"""Every citizen's history of a large event store, read in one sequential pass.

Read in citizen order (the store's primary key), each stored event is a random page
of the events table. While the table fits in SQLite's mapping (2 GiB in Debian's
build) or PostgreSQL's cache that costs little; at a million citizens (a 19 GB SQLite
store) it is most of a rebuild's time and grows with the store (bench/NOTES.md).

So a rebuild reads the table once in notification order instead, its pages in file
order, and spreads the rows of its shard's citizens over bucket files on local disk
by citizen, as a partitioned hash aggregation does; then it reads one bucket at a
time into memory and yields that bucket's citizens' histories. A citizen's events
take rising notification ids as its versions rise (each append takes the next
ones), so a history read in notification order is in version order: no sort.
Memory holds one bucket (`BUCKET_BYTES`) and the write buffers, whatever the
population. The bucket files hold the stored events as the store holds them (the
sealed state, nothing decrypted), in `marshal`'s format (plain values only: reading one
runs no code), and each is deleted once read.
"""

from __future__ import annotations

import marshal
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from casehistory.projections.source import EventStoreSource, StoredEvent

BUCKET_BYTES = 16 << 20
"""Stored bytes (of the file: the events' share is smaller) one bucket is planned to hold,
the bound of a reader's memory for histories (about twice as much as Python objects).
Small buckets fold faster (Python reuses one bucket's freed memory for the next): at
10,000 citizens 0.5 us an event to read buckets of 4 MB back, 1.4 us buckets of 32 MB."""
MOST_BUCKETS = 512
"""Most bucket files one reader writes (open at once); past 512 x 16 MB a shard's buckets
grow instead."""
SCAN_REPORT = 10_000
"""Events scanned per report of the scan's progress."""
PENDING_ROWS = 32_768
"""Rows all of a reader's buckets gather in memory, together, before they are appended to
their files (each bucket 16 to 256 at a time)."""


def histories_by_bucket(
    source: EventStoreSource, until: int, shard: tuple[int, int], folder: Path,
    on_scanned: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, list[StoredEvent]]]:
    """(originator id, its stored events in version order) for every citizen of `shard`
    with events up to `until`, bucket after bucket (files in `folder`); the scan before
    the first reports the events it has spread to `on_scanned`, per `SCAN_REPORT`."""
    planned = -(-source.stored_bytes(until) // shard[1] // BUCKET_BYTES)
    count = min(MOST_BUCKETS, max(1, planned))
    paths = [folder / f"bucket-{shard[0]}-{n}" for n in range(count)]
    rows = source.in_notification_order(until, shard)
    try:
        spread(rows if on_scanned is None else _reported(rows, on_scanned), paths)
        for path in paths:
            yield from read_bucket(path)
            path.unlink()
    finally:
        for path in paths:
            path.unlink(missing_ok=True)


def _reported(rows: Iterable[Any], on_scanned: Callable[[int], None]) -> Iterator[Any]:
    scanned = 0
    for scanned, row in enumerate(rows, 1):
        if not scanned % SCAN_REPORT:
            on_scanned(SCAN_REPORT)
        yield row
    if scanned % SCAN_REPORT:
        on_scanned(scanned % SCAN_REPORT)


def spread(rows: Iterable[tuple[str, int, str, bytes, int]], paths: list[Path]) -> None:
    """Append each row (`EventStoreSource.in_notification_order`) to its citizen's bucket
    file, in frames of rows (a length, then the rows marshalled)."""
    count = len(paths)
    frame = min(256, max(16, PENDING_ROWS // count))
    files = [path.open("wb") for path in paths]
    try:
        pending: list[list[Any]] = [[] for _ in paths]
        for row in rows:
            bucket = hash(row[0]) % count
            gathered = pending[bucket]
            gathered.append(row)
            if len(gathered) >= frame:
                _write_frame(files[bucket], gathered)
                gathered.clear()
        for bucket, gathered in enumerate(pending):
            if gathered:
                _write_frame(files[bucket], gathered)
    finally:
        for file in files:
            file.close()


def _write_frame(file: BinaryIO, rows: list[Any]) -> None:
    data = marshal.dumps(rows)
    file.write(len(data).to_bytes(4, "little"))
    file.write(data)


def read_bucket(path: Path) -> Iterator[tuple[str, list[StoredEvent]]]:
    """The histories of the citizens in one bucket file, in the order they first appear."""
    data = path.read_bytes()
    view = memoryview(data)
    histories: dict[str, list[Any]] = {}
    gather = histories.setdefault
    at = 0
    while at < len(data):
        size = int.from_bytes(view[at : at + 4], "little")
        for row in marshal.loads(view[at + 4 : at + 4 + size]):
            gather(row[0], []).append(row)
        at += 4 + size
    del view, data
    for originator_id, rows in histories.items():
        yield originator_id, [StoredEvent(row[1], row[2], row[3]) for row in rows]
