"""A/B of a follower change on one store, interleaved so drift hits both sides alike.

    .venv/bin/python -m bench.ab_rebuild DATA_DIR [REV] [ROUNDS]

Rebuilds the durations read model with `projections/follower.py` as of git revision
REV (default: the last follower that loaded aggregates through `eventsourcing`'s
mapper) and with the working tree's, in alternation, ROUNDS times each, next to the
raw `select_notifications` read; prints medians and ratios as one JSON line. REV must
be one whose `Follower(app, view, row_for, batch_size)` took a single view.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench import common, rebuild
from casehistory.bootstrap import build

BEFORE = "6bb14ca"


def old_follower_class(rev: str) -> type:
    source = subprocess.run(
        ["git", "show", f"{rev}:projections/follower.py"],
        cwd=common.REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / "old_follower.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_follower", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Follower  # type: ignore[no-any-return]


def as_history(citizen: Any) -> Any:
    """An old follower's aggregate in the shape today's `row_for` takes."""
    from projections.history import CitizenHistory

    history = CitizenHistory(citizen.citizen_key, citizen.birth_date)
    history.facts = citizen.facts
    history.version = citizen.version
    return history


def main() -> int:
    data_dir = Path(sys.argv[1])
    rev = sys.argv[2] if len(sys.argv) > 2 else BEFORE
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    from bench.rebuild import PAGE
    from projections.durations import row_for
    from projections.follower import Follower, Target

    engine = build(common.settings_for(data_dir))
    old = old_follower_class(rev)
    times: dict[str, list[float]] = {"raw": [], "before": [], "after": []}
    events = 0
    try:
        for _ in range(rounds):
            times["raw"].append(rebuild.raw_read(engine)["seconds"])
            for side in ("before", "after"):
                view = engine.replay_view("durations")
                follower = (
                    old(engine.app, view, lambda c: row_for(as_history(c)), batch_size=PAGE)
                    if side == "before"
                    else Follower(engine.app, [Target(view, row_for)], batch_size=PAGE)
                )
                started = time.perf_counter()
                events = follower.catch_up()
                times[side].append(time.perf_counter() - started)
                view.clear(engine.app.name)
    finally:
        engine.close()
    m = {side: median(values) for side, values in times.items()}
    print(json.dumps({
        "events": events, "rounds": rounds, "median_s": m,
        "rate": {side: events / s for side, s in m.items()},
        "ratio_to_raw": {side: m["raw"] / m[side] for side in ("before", "after")},
        "speedup": m["before"] / m["after"],
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
