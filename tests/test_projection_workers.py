"""Projection workers as separate processes: crash and resume, and two workers at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from casehistory.bootstrap import Engine, build
from casehistory.consumers.deadletter import DeadLetterList
from casehistory.entrypoints.cli.common import ingest_files
from casehistory.population import generator
from casehistory.settings import Settings


def worker(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "project", *args],
        env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def rows(engine: Engine) -> str:
    return engine.read_model().checksum()


def rebuilt(engine: Engine) -> str:
    engine.read_model().clear()
    engine.project()
    return rows(engine)


@pytest.fixture
def populated(store_env: dict[str, str], tmp_path: Path) -> Engine:
    source = tmp_path / "population.jsonl"
    generator.write_jsonl(generator.generate_population(800, seed=9), source)
    engine = build(Settings.load(store_env))
    ingest_files(engine, [source], DeadLetterList())
    yield engine
    engine.close()


def test_a_worker_killed_mid_run_resumes_to_identical_read_models(
    populated: Engine, store_env: dict[str, str]
) -> None:
    total = populated.app.recorder.max_notification_id()
    follower = populated.follower()
    # A read model built from zero is loaded in one pass; the backlog after that goes in
    # windows, one transaction each, so the kill lands between two of them.
    start = total // 10
    follower.catch_up(until=start)
    victim = worker(store_env, "--window", "200")
    deadline = time.monotonic() + 60
    while follower.position == start and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    stopped_at = follower.position
    assert start < stopped_at < total, "the worker was not killed mid-run"
    resumed = worker(store_env, "--window", "200")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out.decode()[-2000:]
    assert follower.position == total
    assert f"from position {stopped_at}" in out.decode()  # resumed, did not start over
    after_crash = rows(populated)
    assert after_crash == rebuilt(populated)


def test_two_workers_never_both_apply(populated: Engine, store_env: dict[str, str]) -> None:
    first, second = worker(store_env, "--follow", "--window", "500"), worker(
        store_env, "--follow", "--window", "500"
    )
    follower = populated.follower()
    total = populated.app.recorder.max_notification_id()
    deadline = time.monotonic() + 120
    while follower.position < total and time.monotonic() < deadline:
        time.sleep(0.1)
    for process in (first, second):
        process.send_signal(signal.SIGTERM)
    outputs = [p.communicate(timeout=60)[0].decode() for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    holders = [o for o in outputs if "holding the history projection lease" in o]
    assert len(holders) == 1, outputs  # the other waited as a standby until stopped
    assert follower.position == total
    assert rows(populated) == rebuilt(populated)


def test_twenty_sigkills_of_projection_workers_leave_the_read_model_exact(
    populated: Engine, store_env: dict[str, str]
) -> None:
    """Workers killed at random moments, each resuming where the last commit left off."""
    import random

    rng = random.Random(20)
    total = populated.app.recorder.max_notification_id()
    follower = populated.follower()
    positions = []
    for _ in range(20):
        victim = worker(store_env, "--follow", "--window", str(rng.randrange(20, 200)))
        time.sleep(rng.uniform(0.3, 1.2))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        positions.append(follower.position)
    assert positions == sorted(positions)  # never backwards
    finished = worker(store_env, "--window", "300")
    out, _ = finished.communicate(timeout=300)
    assert finished.returncode == 0, out.decode()[-2000:]
    assert follower.position == total
    assert rows(populated) == rebuilt(populated)
