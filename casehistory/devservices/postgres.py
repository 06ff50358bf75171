"""A real, throwaway PostgreSQL server for local development and tests.

Usage from the shell::

    python -m casehistory.devservices.postgres start|stop|status

``start`` prints the DSN and leaves the server running; its state is kept in
``<cache_dir>/pg-local/state.json`` (cache dir: ``$CASEHISTORY_CACHE_DIR`` or ``<repo>/.cache``).
PostgreSQL refuses to run as root, so when we are root the server runs as the unprivileged
``postgres`` system user (created if missing).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import psycopg
from psycopg import sql

__all__ = [
    "PostgresError",
    "PostgresServer",
    "cache_dir",
    "create_database",
    "drop_database",
    "ensure_installed",
    "load_state",
    "main",
    "start",
    "state_file",
    "status",
    "stop",
]

PG_LIB = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
ROLE = "casehistory"
DBNAME = "casehistory"
START_TIMEOUT = 60.0
_BIND_ERRORS = ("could not bind", "Address already in use", "could not create any TCP/IP sockets")


class PostgresError(RuntimeError):
    """The local PostgreSQL server could not be installed, started or used."""


@dataclass
class PostgresServer:
    """Connection details of a running server (``pid``/``workdir`` are None if not ours)."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    pid: int | None = None
    workdir: Path | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        """``postgresql://user:password@host:port/dbname`` URL."""
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        """DSN of another database on the same server."""
        auth = quote(self.user, safe="")
        if self.password:
            auth += ":" + quote(self.password, safe="")
        query = "?" + urlencode(self.params) if self.params else ""
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}{query}"

    @classmethod
    def from_dsn(cls, dsn: str) -> PostgresServer:
        """Describe an existing server from a ``postgresql://`` URL (not managed by us)."""
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"expected a postgresql:// URL, got {parts.scheme!r}")
        params = dict(parse_qsl(parts.query))
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or ""),
            password=unquote(parts.password or ""),
            dbname=unquote(parts.path.lstrip("/")) or "postgres",
            params=params,
        )


# --------------------------------------------------------------------------- installation


def _installed_bindirs() -> list[Path]:
    dirs = [d / "bin" for d in PG_LIB.glob("*") if (d / "bin" / "initdb").exists()]
    return sorted(dirs, key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)])


def ensure_installed() -> Path:
    """Return the bin dir of the newest installed server, apt-installing it when missing."""
    if dirs := _installed_bindirs():
        return dirs[-1]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgresError(f"no PostgreSQL server under {PG_LIB} and cannot apt-get install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
    ):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise PostgresError(f"{' '.join(cmd)} failed:\n{_tail(proc.stdout + proc.stderr)}")
    if dirs := _installed_bindirs():
        return dirs[-1]
    raise PostgresError(f"apt-get installed postgresql but no server found under {PG_LIB}")


def _bindir_for(datadir: Path) -> Path:
    version = (datadir / "PG_VERSION").read_text().strip() if datadir.exists() else ""
    candidate = PG_LIB / version / "bin"
    return candidate if version and candidate.exists() else ensure_installed()


# --------------------------------------------------------------------------- running as a user


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                SERVICE_USER,
            ],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(SERVICE_USER)


def _run(
    cmd: list[str | Path], workdir: Path, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` as the service user (when root) with a clean, predictable environment."""
    user = _service_user()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": str(workdir)}
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        user=None if user is None else user.pw_uid,
        group=None if user is None else user.pw_gid,
        extra_groups=None if user is None else [],
    )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _log_tail(workdir: Path) -> str:
    log = workdir / "postgres.log"
    return _tail(log.read_text(errors="replace")) if log.exists() else "(no server log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- lifecycle


def start(workdir: Path | None = None, *, timeout: float = START_TIMEOUT) -> PostgresServer:
    """Initialise and start a fresh server in ``workdir`` (default: a new dir under /tmp).

    The workdir must be empty or absent and traversable by the service user; ``stop`` deletes it.
    """
    bindir = ensure_installed()
    user = _service_user()
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="casehistory-pg-", dir="/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    if any(workdir.iterdir()):
        raise PostgresError(f"workdir {workdir} is not empty")
    workdir.chmod(0o700)
    if user is not None:
        os.chown(workdir, user.pw_uid, user.pw_gid)
        if _run(["test", "-w", workdir], workdir).returncode != 0:
            raise PostgresError(f"user {user.pw_name} cannot reach {workdir}; use a dir under /tmp")
    password = secrets.token_urlsafe(24)
    datadir = workdir / "data"
    try:
        _initdb(bindir, workdir, datadir, password)
        for _attempt in range(3):
            server = PostgresServer("127.0.0.1", _free_port(), ROLE, password, DBNAME)
            server.workdir = workdir
            _write_conf(datadir, workdir, server.port)
            proc = _run(
                [
                    bindir / "pg_ctl",
                    "start",
                    "-D",
                    datadir,
                    "-l",
                    workdir / "postgres.log",
                    "-w",
                    "-t",
                    str(int(timeout)),
                ],
                workdir,
                timeout=timeout + 10,
            )
            if proc.returncode == 0:
                break
            log = _log_tail(workdir)
            if not any(e in log for e in _BIND_ERRORS):
                raise PostgresError(f"pg_ctl start failed: {proc.stdout}{proc.stderr}\n{log}")
        else:
            raise PostgresError(f"could not bind a free port:\n{_log_tail(workdir)}")
        server.pid = int((datadir / "postmaster.pid").read_text().split()[0])
        _wait_ready(server.dsn_for("postgres"), timeout)
        with psycopg.connect(server.dsn_for("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(DBNAME), sql.Identifier(ROLE)
                )
            )
        return server
    except BaseException as exc:
        log = _log_tail(workdir)
        _stop_dir(workdir)
        if isinstance(exc, PostgresError) or not isinstance(exc, Exception):
            raise
        raise PostgresError(f"PostgreSQL failed to start: {exc!r}\nserver log:\n{log}") from exc


def _initdb(bindir: Path, workdir: Path, datadir: Path, password: str) -> None:
    pwfile = workdir / "pwfile"
    pwfile.write_text(password + "\n")
    user = _service_user()
    if user is not None:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    proc = _run(
        [
            bindir / "initdb",
            "-D",
            datadir,
            "--username",
            ROLE,
            "--pwfile",
            pwfile,
            "--auth-local",
            "trust",
            "--auth-host",
            "scram-sha-256",
            "--encoding",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        workdir,
    )
    pwfile.unlink()
    if proc.returncode != 0:
        raise PostgresError(f"initdb failed:\n{_tail(proc.stdout + proc.stderr)}")


def _write_conf(datadir: Path, workdir: Path, port: int) -> None:
    """Settings go to postgresql.auto.conf (overwritten on each attempt); TCP on 127.0.0.1 only."""
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(workdir),
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
    (datadir / "postgresql.auto.conf").write_text(
        "".join(f"{k} = '{v}'\n" for k, v in settings.items())
    )
    # Unix socket (private 0700 dir): trust; TCP: password, loopback IPv4 only.
    (datadir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
    )


def _wait_ready(dsn: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(dsn, connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _stop_dir(workdir: Path) -> None:
    datadir = workdir / "data"
    if (datadir / "postmaster.pid").exists():
        bindir = _bindir_for(datadir)
        for mode in ("fast", "immediate"):
            proc = _run(
                [bindir / "pg_ctl", "stop", "-D", datadir, "-m", mode, "-w", "-t", "30"],
                workdir,
                timeout=40,
            )
            if proc.returncode == 0 or not (datadir / "postmaster.pid").exists():
                break
    shutil.rmtree(workdir, ignore_errors=True)


def stop(server: PostgresServer) -> None:
    """Stop a server started by :func:`start` (``pg_ctl stop -m fast``) and delete its workdir."""
    if server.workdir is None:
        raise PostgresError("not a locally managed server; refusing to stop it")
    _stop_dir(server.workdir)


def status(server: PostgresServer) -> bool:
    """True if the server accepts connections."""
    try:
        with psycopg.connect(server.dsn, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def create_database(server: PostgresServer, name: str) -> str:
    """Create a fresh, empty database ``name`` owned by the server's user and return its DSN."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.dsn_for(name)


def drop_database(server: PostgresServer, name: str) -> None:
    """Drop database ``name`` if it exists, disconnecting its sessions."""
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --------------------------------------------------------------------------- CLI state


def cache_dir() -> Path:
    """``$CASEHISTORY_CACHE_DIR`` or ``<repo>/.cache``."""
    env = os.environ.get("CASEHISTORY_CACHE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".cache"


def state_file() -> Path:
    """Where the CLI records the server it started."""
    return cache_dir() / "pg-local" / "state.json"


def load_state() -> PostgresServer | None:
    """The server recorded by ``start`` on the CLI, if any."""
    path = state_file()
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data["workdir"] = Path(data["workdir"]) if data.get("workdir") else None
    return PostgresServer(**data)


def _save_state(server: PostgresServer) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**asdict(server), "workdir": str(server.workdir)}
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """``install`` (server binaries), ``start`` (print DSN), ``stop`` or ``status``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("install", "start", "stop", "status"):
        usage = "usage: python -m casehistory.devservices.postgres install|start|stop|status"
        print(usage, file=sys.stderr)
        return 2
    if args[0] == "install":
        print(ensure_installed())
        return 0
    current = load_state()
    if args[0] == "start":
        if current is not None and status(current):
            print(current.dsn)
            return 0
        if current is not None:  # stale state: clean up whatever is left
            stop(current)
        try:
            server = start()
        except PostgresError as exc:
            print(exc, file=sys.stderr)
            return 1
        _save_state(server)
        print(server.dsn)
        return 0
    if args[0] == "stop":
        if current is None:
            print("not running")
            return 0
        stop(current)
        state_file().unlink(missing_ok=True)
        print("stopped")
        return 0
    if current is not None and status(current):
        print(f"running pid={current.pid} workdir={current.workdir} dsn={current.dsn}")
        return 0
    print("stopped (stale state)" if current is not None else "stopped")
    return 3


if __name__ == "__main__":
    sys.exit(main())
