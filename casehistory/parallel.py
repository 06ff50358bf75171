"""A rebuild from zero in worker processes, one shard of citizens each.

A rebuild is CPU-bound Python (decoding, pairing, spells), so it runs in as many
processes as there are cores: each worker opens the engine from the same settings,
reads the histories of its range of originator ids and computes the rows. From a
large event store (`buckets_from`: a SQLite file larger than SQLite maps, a PostgreSQL
events table larger than the server's declared cache) a worker reads the
events table once in notification order through bucket files (`projections.buckets`),
so its reads stay sequential however large the store; from a smaller one it streams the
histories in citizen order.

- Into SQLite (the embedded default) each worker bulk-writes its rows into a
  shard file of its own, and the read model takes every shard in one fenced
  transaction (`SQLiteReadModel.load_shards`): no row crosses a process boundary.
- Into PostgreSQL the workers send their rows in chunks over a bounded queue and
  the parent writes them in its one fenced transaction.

Either way memory stays a few chunks per worker whatever the population.

Workers are plain interpreters (`python -c`, the job pickled on stdin, messages
pickled back over a pipe), not `multiprocessing` children: those import the
parent's main module first (the whole CLI, a benchmark with DuckDB), which cost
each worker more than a second before its first event.

A SQLite event store read in citizen order is read into the page cache in file order
before the workers start (`read_ahead`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue as queues
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from casehistory.projections.buckets import histories_by_bucket
from casehistory.projections.follower import citizen_rows, counted
from casehistory.projections.history import HistoryDecoder
from casehistory.projections.rows import CitizenRows
from casehistory.projections.source import EventStoreSource
from casehistory.projections.store import ReadModelStore, SQLiteReadModel
from casehistory.settings import Settings

CHUNK = 500
"""Citizens per message from a worker (rows sent to the parent)."""
_DONE = "done"


BUCKETS_FROM_BYTES = 2 << 30
"""Size of a SQLite event store from which the workers read it through bucket files. Up to
it SQLite maps the whole file (Debian's build maps 2 GiB) and a read in citizen order costs
less (at 100,000 citizens, 1.9 GB: 2.64x DuckDB load+query, through buckets 3.02x); past it
each event is a random read outside the mapping (1,000,000 citizens: 19.0 against 13.2 us
an event, bench/NOTES.md)."""


def buckets_from(source: EventStoreSource) -> int:
    """Size of an event store from which a rebuild reads it through bucket files: on SQLite
    `BUCKETS_FROM_BYTES`; on PostgreSQL the server's `effective_cache_size` (what its
    planner takes to be cached). A heap that fits the cache is read faster in citizen
    order (100,000 citizens, a 1.3 GB heap: 16.7-17.3 us an event against 17.5-18.8
    through buckets, bench/NOTES.md); past it each event may be a read from disk."""
    return source.cache_bytes() if source.postgres else BUCKETS_FROM_BYTES


def default_workers() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0))))


class ShardedRows:
    """A `projections.follower.FreshLoad`: every citizen's rows of partition group
    `group`'s event store (read through `source`) up to a position (tracked in the read
    model as `tracking`)."""

    def __init__(
        self, settings: Settings, source: EventStoreSource, workers: int, group: int = 0,
        tracking: str | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.workers = workers
        self.group = group
        self.tracking = tracking

    def __call__(
        self,
        store: ReadModelStore,
        until: int,
        on_batch: Callable[[int], None] | None,
        outbox: bool,
    ) -> None:
        location = self.settings.group_store(self.group)
        bucketed = self.source.stored_bytes(until) > buckets_from(self.source)
        if not location.uses_postgres and not bucketed:
            read_ahead(self.settings.data_dir / location.schema)
        scratch = store.path.parent if isinstance(store, SQLiteReadModel) else None
        if scratch is None and bucketed:  # bucket files in the data dir
            scratch = self.settings.data_dir
            scratch.mkdir(parents=True, exist_ok=True)
        folder = None
        if scratch is not None:
            _remove_abandoned_shards(scratch)
            prefix = f".rebuild-{os.getpid()}-"
            folder = Path(tempfile.mkdtemp(prefix=prefix, dir=scratch))
        buckets = folder if bucketed else None
        progress = _Progress(on_batch, two_passes=bucketed)
        try:
            if isinstance(store, SQLiteReadModel):
                assert folder is not None
                shards = [folder / f"shard-{index}.db" for index in range(self.workers)]
                targets = [str(shard) for shard in shards]
                messages = self._run(_rows_into_shard, until, targets, buckets)
                for events in progress.computed(messages):
                    progress.add(events)
                store.load_shards(shards, since=0, until=until, outbox=outbox,
                                  store=self.tracking)
            else:
                chunks = self._run(_rows_to_parent, until, [None] * self.workers, buckets)
                citizens = (rows for chunk in progress.computed(chunks) for rows in chunk)
                store.write(
                    counted(citizens, progress.add), since=0, until=until, replace=False,
                    outbox=outbox, store=self.tracking,
                )
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)

    def _run(
        self, work: Callable[..., None], until: int, targets: list[Any], buckets: Path | None
    ) -> Iterator[Any]:
        """Run `work` in one process per shard (reading a SQLite store through bucket files
        in `buckets`); yield what the workers send until all are done."""
        channel: queues.Queue[Any] = queues.Queue(maxsize=4 * self.workers)
        workers: list[tuple[subprocess.Popen[bytes], threading.Thread]] = []
        try:
            for index, target in enumerate(targets):
                shard = (index, self.workers)
                job = (work, self.settings, self.group, until, shard, target, buckets)
                workers.append(_start(job, channel))
            running = len(workers)
            while running:
                try:
                    message = channel.get(timeout=5)
                except queues.Empty:
                    if any(process.poll() not in (None, 0) for process, _relay in workers):
                        raise RuntimeError("a rebuild worker died") from None
                    continue
                if message == _DONE:
                    running -= 1
                elif isinstance(message, BaseException):
                    raise message
                else:
                    yield message
        finally:
            for process, relay in workers:
                if process.poll() is None:
                    process.terminate()
                process.wait()
                while relay.is_alive():  # unblock a relay waiting for room in the channel
                    with contextlib.suppress(queues.Empty):
                        channel.get(timeout=0.1)


class Scanned(NamedTuple):
    """A worker's message: the scan has spread this many more events to bucket files."""

    events: int


class _Progress:
    """A rebuild's progress for `on_batch`, in stored events. Read through buckets, an
    event counts half when the scan spreads it and half when its citizen's rows are
    computed: the count reaches the same total, and it moves during the scan too."""

    def __init__(self, on_batch: Callable[[int], None] | None, two_passes: bool) -> None:
        self.on_batch = on_batch
        self.two_passes = two_passes
        self._halves = self._reported = 0

    def computed(self, messages: Iterator[Any]) -> Iterator[Any]:
        """The workers' `messages` but the scan's, which are counted."""
        for message in messages:
            if isinstance(message, Scanned):
                self._count(message.events)
            else:
                yield message

    def add(self, events: int) -> None:
        """Count `events` whose rows are computed."""
        if self.two_passes:
            self._count(events)
        elif self.on_batch is not None:
            self.on_batch(events)

    def _count(self, halves: int) -> None:
        self._halves += halves
        whole = self._halves // 2
        if whole > self._reported and self.on_batch is not None:
            self.on_batch(whole - self._reported)
        self._reported = whole


READ_AHEAD_CHUNK = 64 * 1024 * 1024


def read_ahead(path: Path) -> int:
    """Pull a SQLite event store's file into the page cache in one pass in file order
    (`sendfile` to /dev/null: nothing is copied); returns the bytes passed.

    The workers read the events in citizen order, one random page of the file per event.
    From a cold cache one reader took 38 s for half the 100,000-citizen store (1.9 GB),
    12.6 s after this pass (1.3-4.6 s of it); the two workers' phase 57-127 s without it,
    52-93 s after it (three runs each, under other sessions' load). Beside the workers
    instead of before them it competed with their reads. A file already cached costs
    0.1 s. Nothing is read when the file is larger than half the memory available: it
    would only push other pages out.

    The pass runs in a child process. Closing a descriptor of the store's file here would
    drop every POSIX lock this process's SQLite connections hold on it; another process
    closing its last connection would then take itself for the last one and delete the
    write-ahead log under them, and a commit here would go to the deleted log (lost)."""
    size = path.stat().st_size
    if size > _memory_available() // 2:
        return 0
    passed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _READ_AHEAD, str(path), str(READ_AHEAD_CHUNK)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return int(passed)


_READ_AHEAD = """\
import os, sys
path, chunk = sys.argv[1], int(sys.argv[2])
passed = 0
with open(path, "rb") as source, open(os.devnull, "wb") as sink:
    while sent := os.sendfile(sink.fileno(), source.fileno(), passed, chunk):
        passed += sent
print(passed)
"""


def _memory_available() -> int:
    """Bytes of memory available to new page-cache pages (0 when unknown)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _start(
    job: tuple[Any, ...], channel: queues.Queue[Any]
) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    """A worker process running `job`, and the thread relaying its messages into `channel`."""
    reading, writing = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-c", "from casehistory.parallel import _serve; _serve()",
             str(writing)],
            stdin=subprocess.PIPE, pass_fds=(writing,),
        )  # fmt: skip
    except BaseException:
        os.close(reading)
        raise
    finally:
        os.close(writing)
    relay = threading.Thread(target=_relay, args=(os.fdopen(reading, "rb"), channel), daemon=True)
    relay.start()
    assert process.stdin is not None
    try:
        with process.stdin:
            pickle.dump(job, process.stdin)
    except BaseException:  # e.g. it died starting: its relay ends with the pipe
        process.kill()
        process.wait()
        raise
    return process, relay


def _relay(messages: Any, channel: queues.Queue[Any]) -> None:
    """Every message a worker pickled into its pipe, in order, until the pipe closes."""
    with messages:
        while True:
            try:
                message = pickle.load(messages)
            except EOFError:
                return
            except Exception as error:  # a worker killed in the middle of a message
                channel.put(RuntimeError(f"a rebuild worker's message was cut: {error!r}"))
                return
            channel.put(message)


def _remove_abandoned_shards(folder: Path) -> None:
    """Delete the shard folders of rebuilds whose process is gone (killed mid-load)."""
    for abandoned in folder.glob(".rebuild-*-*"):
        pid = abandoned.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(abandoned, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Pipe:
    """The worker's end of its pipe to the parent (a channel `put` pickles into)."""

    def __init__(self, fd: int) -> None:
        self._file = os.fdopen(fd, "wb")

    def put(self, message: Any) -> None:
        pickle.dump(message, self._file)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _serve() -> None:
    """A worker process's entry point: run the job on stdin, messages into the pipe."""
    channel = _Pipe(int(sys.argv[1]))
    try:
        _worker(pickle.load(sys.stdin.buffer), channel)
    finally:
        channel.close()


def _worker(job: tuple[Any, ...], channel: _Pipe) -> None:
    """Compute the rows of one shard of citizens and hand them to `work`."""
    from casehistory.bootstrap import build, tune_garbage_collector

    work, settings, group, until, shard, target, buckets = job
    tune_garbage_collector()
    engine = build(settings, group)
    try:
        source = EventStoreSource(engine.app)
        if buckets is None:
            histories = source.histories(until, shard=shard)
        else:
            histories = histories_by_bucket(
                source, until, shard, buckets, lambda events: channel.put(Scanned(events))
            )
        citizens = citizen_rows(HistoryDecoder(engine.app.mapper), histories, settings.staff_key)
        work(citizens, until, target, channel)
        channel.put(_DONE)
    except BaseException as error:  # the parent re-raises it
        channel.put(RuntimeError(f"rebuild worker {shard}: {error!r}"))
        raise
    finally:
        engine.close()


def _rows_to_parent(
    citizens: Iterator[CitizenRows], _until: int, _target: None, channel: Any
) -> None:
    chunk: list[CitizenRows] = []
    for rows in citizens:
        chunk.append(rows)
        if len(chunk) >= CHUNK:
            channel.put(chunk)
            chunk = []
    if chunk:
        channel.put(chunk)


def _rows_into_shard(citizens: Iterator[CitizenRows], until: int, path: str, channel: Any) -> None:
    """Bulk-write the shard's rows into a read-model file of its own; report events done."""
    shard = SQLiteReadModel(Path(path), "shard", scratch=True)
    try:
        shard.create(indexes=False)
        shard.bulk_indexes = False
        shard.write(counted(citizens, channel.put), since=0, until=until, replace=False)
    finally:
        shard.close()
