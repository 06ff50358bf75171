"""Measure 2, rebuild: read models rebuilt from the event store against a bare sequential read.

The raw limit is `app.recorder.select_notifications` in pages of the follower's batch
size over the same store (rows fetched, nothing decoded). For reference the run also
times read + decode (`app.mapper.to_domain_event` per notification). A rebuild is
`Engine.follower(name, engine.replay_view(name)).catch_up()`: a fresh copy beside the
live view, which is exactly what `casehistory.replay.rebuild` does before comparing
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


def rebuild(engine: Any, name: str) -> dict[str, float]:
    return rebuild_all(engine, [name])


def rebuild_all(engine: Any, names: list[str]) -> dict[str, float]:
    from casehistory.bootstrap import READ_MODELS
    from projections.follower import Follower, Target

    fresh = {name: engine.replay_view(name) for name in names}
    targets = [Target(view, READ_MODELS[name].row_for) for name, view in fresh.items()]
    follower = Follower(engine.app, targets, batch_size=PAGE)
    started = time.perf_counter()
    applied = follower.catch_up()
    seconds = time.perf_counter() - started
    equal = all(view.checksum() == engine.view(name).checksum() for name, view in fresh.items())
    for view in fresh.values():
        view.clear(engine.app.name)
    return {"events": applied, "seconds": seconds, "rate": applied / seconds, "equal": equal}
