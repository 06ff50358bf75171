"""Shared helpers for the benchmark scripts: workspace, settings, statistics, machine facts."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
CASEHISTORY = REPO / ".venv" / "bin" / "casehistory"
WORK = Path(os.environ.get("BENCH_WORK", "/tmp/casehistory-bench"))
PSEUDONYM_KEY = "5eed" * 16  # fixed, so the bench can compute citizen keys itself
SEED = 20261123


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    """Process environment of an engine on the embedded SQLite store in `data_dir`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEHISTORY_")}
    env.update(
        CASEHISTORY_DATA_DIR=str(data_dir),
        CASEHISTORY_STORE="sqlite",
        CASEHISTORY_PSEUDONYM_KEY=PSEUDONYM_KEY,
        CASEHISTORY_USER="bench",
        CASEHISTORY_ROLE="operator",  # the engine's commands are the operator's
        **extra,
    )
    return env


def settings_for(data_dir: Path, **extra: str) -> Any:
    from casehistory.settings import Settings

    data_dir.mkdir(parents=True, exist_ok=True)
    return Settings.load(env_for(data_dir, **extra))


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss it is not inherited across exec)."""
    status = Path("/proc/self/status")
    if status.exists():
        return _hwm_mb(status.read_text())
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used, all its threads
    (/proc/PID/stat; NaN once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (/proc/stat: neither idle nor
    waiting for I/O)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _hwm_mb(status: str) -> float:
    """VmHWM of a /proc/PID/status text, in MB (0 for a process without memory)."""
    return _status_mb(status, "VmHWM:")


def _status_mb(status: str, field: str) -> float:
    for line in status.splitlines():
        if line.startswith(field):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def children_peak_rss(every: float = 0.05) -> Iterator[list[float]]:
    """The largest peak RSS (VmHWM) of this process's child processes (e.g. rebuild
    workers) while the block runs, and the largest of their anonymous memory (RssAnon)
    seen, sampled every `every` seconds; yields a box that holds the two, in MB, when the
    block ends. A worker's RSS counts the pages of a file it maps (a rebuild's workers
    map the event store); its anonymous memory is its own.

    Only the children's own status files are read (listed by each thread's `children`
    file): scanning every process's took 2.3 ms of CPU a time, 5% of a core every 50 ms,
    beside workers that need every core."""
    box: list[float] = []
    peak = [0.0, 0.0]
    done = threading.Event()
    tasks = Path(f"/proc/{os.getpid()}/task")

    def sample() -> None:
        while not done.wait(every):
            for children in tasks.glob("*/children"):
                try:
                    pids = children.read_text().split()
                except OSError:
                    continue  # the thread ended
                for pid in pids:
                    try:
                        status = Path(f"/proc/{pid}/status").read_text()
                    except OSError:
                        continue  # the process ended
                    peak[0] = max(peak[0], _hwm_mb(status))
                    peak[1] = max(peak[1], _status_mb(status, "RssAnon:"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield box
    finally:
        done.set()
        sampler.join()
        box.extend(peak)


@contextmanager
def timer() -> Iterator[list[float]]:
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def run_json(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a bench script in its own process; its last stdout line is a JSON result."""
    done = subprocess.run(
        [str(PYTHON), *args], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise RuntimeError(f"{args} failed with exit code {done.returncode}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kb = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(total_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
    }


def code_version() -> str:
    """The commit measured, with `+changes` when tracked Python files differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "*.py")
    return head + ("+changes" if changed else "")


def versions(kafka_version: str | None = None) -> dict[str, str]:
    import sqlite3
    from importlib.metadata import version

    found = {"python": platform.python_version()}
    for package in (
        "eventsourcing", "kafka-python", "crc32c", "fastavro", "duckdb", "pydantic", "psycopg"
    ):
        try:
            found[package] = version(package)
        except Exception:
            found[package] = "not installed"
    found["SQLite"] = sqlite3.sqlite_version
    if kafka_version:
        found["Kafka broker"] = kafka_version
    return found
