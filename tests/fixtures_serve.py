"""A real `casehistory serve` process on a free port over a generated municipality.

The population is generated, ingested and projected in this process into a
temporary data dir with a user per role; the server then runs as a subprocess
exactly as an operator starts it, and the tests talk HTTP to 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from casehistory.bootstrap import build
from casehistory.consumers.deadletter import DeadLetterFile
from casehistory.consumers.ingest import IngestReport
from casehistory.entrypoints.api.identity import USERS_FILE, LocalUsers
from casehistory.population import generator
from casehistory.services.access import REFUSED, LookupLog, Role
from casehistory.settings import Settings

AS_OF = date(2026, 11, 1)
CITIZENS = 600
SEED = 11
KEY = "ab" * 32


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Served:
    url: str
    data_dir: Path
    env: dict[str, str]
    population: Path
    ingested: IngestReport
    process: subprocess.Popen[bytes]

    @staticmethod
    def password(role: str) -> str:
        return f"secret-{role}-password"

    def request(
        self, path: str, role: str | None = "analyst", body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of one request as the user named after `role`."""
        sent = dict(headers or {})
        if role is not None:
            token = base64.b64encode(f"{role}:{self.password(role)}".encode()).decode()
            sent["Authorization"] = f"Basic {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data=data, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, path: str, role: str = "analyst", body: Any = None) -> Any:
        status, _, content = self.request(path, role, body)
        assert status == 200, (status, content[:500])
        return json.loads(content)

    def access_log(self) -> list[dict[str, Any]]:
        """The lookup log's records, oldest first; a refusal's action is its `permission` and
        where it was asked its `path`."""
        log = LookupLog(Settings.load(self.env))
        try:
            return [
                {**asdict(r), "roles": r.role.split(","),
                 **({"permission": r.shown, "path": r.criterion} if r.kind == REFUSED else {})}
                for r in log.records()
            ]
        finally:
            log.close()


def populate(env: dict[str, str], citizens: int = CITIZENS) -> tuple[Path, IngestReport]:
    """Generate, ingest and project a municipality into the store `env` names."""
    from casehistory.entrypoints.cli.common import ingest_files

    settings = Settings.load(env)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    population = settings.data_dir / "population.jsonl"
    generator.write_jsonl(generator.generate_population(citizens, SEED, until=AS_OF), population)
    engine = build(settings)
    try:
        report = ingest_files(engine, [population],
                              DeadLetterFile(settings.data_dir / "dead-letters.jsonl"))
        engine.project()
    finally:
        engine.close()
    users = LocalUsers(settings.data_dir / USERS_FILE)
    for role in Role:
        users.add(role.value, [role], Served.password(role.value))
    return population, report


def start_server(env: dict[str, str], data_dir: Path, extra: list[str] | None = None,
                 ) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    log = (data_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "casehistory.entrypoints.cli", "serve", "--port", str(port),
         "--log-level", "warning", *(extra or [])],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url + "/openapi.json", timeout=2)
        except urllib.error.HTTPError:
            break  # answering (401: who are you?)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError((data_dir / "serve.log").read_text()) from None
            time.sleep(0.2)
    return url, process


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`casehistory serve` on SQLite over a generated municipality, for the whole session."""
    data_dir = tmp_path_factory.mktemp("served")
    env = {"CASEHISTORY_DATA_DIR": str(data_dir), "CASEHISTORY_PSEUDONYM_KEY": KEY,
           "CASEHISTORY_STORE": "sqlite"}
    population, report = populate(env)
    url, process = start_server(env, data_dir, ["--as-of", AS_OF.isoformat()])
    try:
        yield Served(url, data_dir, env, population, report, process)
    finally:
        stop_server(process)
