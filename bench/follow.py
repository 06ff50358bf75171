"""A projection worker for the benchmarks: follows every read model until told to stop.

    python -m bench.follow DONE_FILE     (CASEHISTORY_* env names the store)

Runs one follower feeding every registered read model in a loop (like `casehistory
project --follow`). Once DONE_FILE exists and nothing is left
to apply it prints one JSON line: when it finished (time.time()) and how much it applied.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from casehistory.bootstrap import READ_MODEL, build, tune_garbage_collector


def main() -> int:
    done = Path(sys.argv[1])
    tune_garbage_collector()  # as the casehistory command does
    engine = build()
    follower = engine.follower()
    applied = 0
    try:
        while True:
            step = follower.catch_up()
            applied += step
            if step == 0:
                if done.exists() and follower.lag() == 0:
                    break
                time.sleep(0.05)
    finally:
        engine.close()
    print(json.dumps({"finished": time.time(), "applied": applied, "models": [READ_MODEL]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
