"""`casehistory serve` and `casehistory users`: run the web application, manage local users.

`serve` runs one process: uvicorn with the read API, the dashboard and
`/metrics`, and (unless `--no-follow`) a projection loop that keeps the read
models up to date under their projection leases, as `project --follow` does,
timing each batch for `/metrics`. On a first start with no user file it creates
one user per role and writes their passwords, readable by the owner only, next
to it.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import threading
import time
from datetime import date
from typing import Any

from casehistory.bootstrap import LongLivedObjects
from casehistory.entrypoints.api.identity import USERS_FILE, LocalUsers, create_initial_users
from casehistory.services.access import Role

log = logging.getLogger("casehistory.serve")
INITIAL_PASSWORDS = "initial-passwords.txt"


def follow(engine: Any, metrics: Any, stop: threading.Event, interval: float = 0.5) -> None:
    """Keep the read model up to date until `stop`, under the projection lease."""
    with engine.projection_lease(stop) as lease:
        if not lease:
            return
        follower = engine.follower(follow=True)
        log.info("projecting from position %d", follower.position)
        long_lived = LongLivedObjects()
        while not stop.is_set():
            if not lease.held():
                log.warning("lost the projection lease; the read model is no longer followed")
                return
            started = time.perf_counter()
            try:
                applied = follower.catch_up()
            except Exception:
                log.exception("projection batch failed; retrying")
                stop.wait(5)
                continue
            if applied:
                metrics.record_batch(time.perf_counter() - started, applied,
                                     stored_at(engine, follower.positions()))
            long_lived.settle()
            stop.wait(interval)


def stored_at(engine: Any, positions: dict[str, int]) -> Any:
    """When the newest of the events at these positions (by tracking name, one per
    partition group's store) was stored: its domain event's timestamp."""
    names = engine.tracking_names()
    times = []
    for group, app in engine.stores.items():
        found = app.recorder.select_notifications(start=positions.get(names[group], 0), limit=1)
        if found:
            times.append(app.mapper.to_domain_event(found[0]).timestamp)
    return max(times, default=None)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from casehistory.bootstrap import build
    from casehistory.entrypoints.api.app import create_app

    # Pages read citizens through the aggregate cache: bring cached ones up to date.
    os.environ.setdefault("CASEHISTORY_AGGREGATE_CACHE_FASTFORWARD", "y")
    engine = build()
    users = LocalUsers(engine.settings.data_dir / USERS_FILE)
    if not users and not os.environ.get("CASEHISTORY_OIDC_ISSUER"):
        passwords = engine.settings.data_dir / INITIAL_PASSWORDS
        create_initial_users(users, passwords)
        log.info("created one user per role; their passwords are in %s", passwords)
    app = create_app(engine, default_as_of=args.as_of)
    stop = threading.Event()
    projector = None
    if args.follow:
        projector = threading.Thread(
            target=follow, args=(engine, app.state.surfaces.metrics, stop), daemon=True,
            name="projector",
        )
        projector.start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=False)
    finally:
        stop.set()
        if projector is not None:
            projector.join(timeout=10)
        engine.close()
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    from casehistory.settings import Settings

    settings = Settings.load()
    password = (sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty()
                else getpass.getpass(f"password for {args.name}: "))
    if len(password) < 8:
        raise SystemExit("a password needs at least 8 characters")
    users = LocalUsers(settings.data_dir / USERS_FILE)
    users.add(args.name, [Role(r) for r in args.role], password)
    print(f"{args.name}: {', '.join(args.role)}")
    return 0


def add_parsers(sub: Any) -> None:
    """Register `serve` and `users add` on the main parser's subcommands."""
    serve = sub.add_parser("serve", help="serve the read API, the dashboard and /metrics")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--no-follow", dest="follow", action="store_false",
                       help="do not keep the read models up to date in this process")
    serve.add_argument("--as-of", type=date.fromisoformat,
                       help="the date pages show when none is chosen (default: today)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=cmd_serve)

    users = sub.add_parser("users", help="local users of `serve` (the embedded default)")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", help="add or replace a user; the password from stdin")
    add.add_argument("name")
    add.add_argument("--role", action="append", required=True, choices=[r.value for r in Role])
    add.set_defaults(func=cmd_users_add)
