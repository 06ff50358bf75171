"""Measure 2, rebuild: read models rebuilt from the event store against a bare sequential read.

The raw limit is `app.recorder.select_notifications` in pages of the follower's batch
size over the same store (rows fetched, nothing decoded). For reference the run also
times read + decode (`app.mapper.to_domain_event` per notification). A rebuild is
`Engine.follower(name, engine.replay_view(name)).catch_up()`: a fresh copy beside the
live view, which is exactly what `casehistory.services.replay.rebuild` does before comparing
checksums. `rebuild_all` feeds fresh copies of every read model from one pass, as
`casehistory project` and the projection workers do.
"""

from __future__ import annotations

import time
from typing import Any

PAGE = 1000


def raw_read(engine: Any, decode: bool = False) -> dict[str, float]:
    recorder = engine.app.recorder
    mapper = engine.app.mapper
    position, count = 0, 0
    started = time.perf_counter()
    while True:
        page = recorder.select_notifications(start=position, limit=PAGE, inclusive_of_start=False)
        if not page:
            break
        if decode:
            for notification in page:
                mapper.to_domain_event(notification)
        position = page[-1].id
        count += len(page)
    seconds = time.perf_counter() - started
    return {"events": count, "seconds": seconds, "rate": count / seconds}


def rebuild_all(engine: Any) -> dict[str, float]:
    """One-pass rebuild of the read model into an empty copy, checked against the live one."""
    fresh = engine.replay_read_model()
    started = time.perf_counter()
    applied = engine.follower(fresh).catch_up()
    seconds = time.perf_counter() - started
    equal = fresh.checksum() == engine.read_model().checksum()
    fresh.clear()
    return {"events": applied, "seconds": seconds, "rate": applied / seconds, "equal": equal}
