"""The web application: read API, dashboard, operations and `/metrics` in one process.

Every request gets an identity first (`Identity`, from a bearer token or the
local user file) or a 401; each route then asks for one action of
`casehistory.services.access`, and a refusal is answered 403 and written to the lookup log.
Reports are computed by `casehistory.services` and cached per arguments until a
read model moves on.
Nothing is loaded from outside: the API docs, the design system, the chart
library and their fonts are served from the package, and a content security
policy holds the browser to this origin.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from casehistory.bootstrap import Engine
from casehistory.entrypoints.api.identity import (
    USERS_FILE,
    LocalUsers,
    OidcSettings,
    OidcVerifier,
    basic_credentials,
)
from casehistory.metrics import EngineMetrics
from casehistory.services import reports as services
from casehistory.services.access import Action, Identity, LookupLog

log = logging.getLogger("casehistory.services.access")
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'self'; form-action 'self'"
)
T = TypeVar("T")


@dataclass
class Surfaces:
    """What the routes share: the engine (and its lookup log), the users, a report cache."""

    engine: Engine
    users: LocalUsers
    oidc: OidcVerifier | None
    metrics: EngineMetrics
    _cache: OrderedDict[Hashable, Any] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def identify(self, request: Request) -> Identity | None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and self.oidc is not None:
            return self.oidc.identity(token.strip())
        credentials = basic_credentials(header)
        return self.users.authenticate(*credentials) if credentials else None

    def report(self, name: str, args: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """`compute()`, remembered until the read models move (at most 64 reports)."""
        _, statuses = services.read_model_status(self.engine)
        key = (name, args, tuple(s.position for s in statuses))
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]  # type: ignore[no-any-return]
        value = compute()
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > 64:
                self._cache.popitem(last=False)
        return value


def _own_origin(request: Request) -> str:
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def surfaces(request: Request) -> Surfaces:
    found: Surfaces = request.app.state.surfaces
    return found


def identity(request: Request) -> Identity:
    found: Identity = request.state.identity
    return found


def lookup_log(request: Request) -> LookupLog:
    return surfaces(request).engine.lookup_log


def require(action: Action) -> Callable[[Request], Identity]:
    """A dependency: the caller's identity if its roles allow `action`, else 403 (logged)."""

    def check(request: Request) -> Identity:
        who = identity(request)
        if not who.may(action):
            lookup_log(request).log_refusal(who, action, request.url.path)
            log.warning("refused %s (%s): %s on %s", who.who, who.role_names, action.value,
                        request.url.path)
            raise HTTPException(403, f"your roles may not use {action.value}")
        return who

    return check


def per_citizen_rows(
    request: Request,
    who: Annotated[Identity, Depends(require(Action.PER_CITIZEN_ROWS))],
    purpose: Annotated[str, Query(min_length=3, description="why: a purpose or case "
                                  "reference (written to the lookup log)")],
) -> Identity:
    """A dependency: a caller whose roles allow rows per citizen, with the read logged first
    (its purpose, and as search criterion the path and query without the purpose)."""
    log_rows(request, who, purpose)
    return who


def log_rows(request: Request, who: Identity, purpose: str) -> None:
    """Log a read of rows per citizen by its path and query (the purpose apart)."""
    query = "&".join(f"{k}={v}" for k, v in request.query_params.multi_items()
                     if k != "purpose")
    lookup_log(request).log_rows(who, purpose, request.url.path + (f"?{query}" if query else ""))


def create_app(
    engine: Engine, data_dir: Path | None = None, default_as_of: date | None = None
) -> FastAPI:
    """The application over an engine; users live in `data_dir` (the lookup log is the engine's).

    Pages opened without a date show `default_as_of` (today when not given).
    """
    from casehistory.entrypoints.api import routes
    from casehistory.entrypoints.web import pages

    folder = data_dir or engine.settings.data_dir
    oidc = OidcSettings.load()
    app = FastAPI(
        title="casehistory read API",
        version="1",
        description="Durations, cohorts, coordination and flows for any as-of date; one "
        "citizen's history for caseworkers. Formats: JSON, CSV (Danish: `;`, decimal comma, "
        "UTF-8 BOM) and XLSX.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.default_as_of = default_as_of
    app.state.surfaces = Surfaces(
        engine=engine,
        users=LocalUsers(folder / USERS_FILE),
        oidc=OidcVerifier(oidc) if oidc else None,
        metrics=EngineMetrics(engine),
    )

    @app.middleware("http")
    async def authenticate(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        who = request.app.state.surfaces.identify(request)
        if who is None:
            return JSONResponse(
                {"detail": "who are you? Basic credentials from the user file or a bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="casehistory", charset="UTF-8"'},
            )
        request.state.identity = who
        origin = request.headers.get("origin")
        if request.method not in ("GET", "HEAD") and origin and origin != _own_origin(request):
            # A browser sends its credentials to a form posted from another site: refuse.
            lookup_log(request).log_refusal(who, "same_origin", request.url.path)
            return JSONResponse({"detail": "cross-site request refused"}, status_code=403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    app.include_router(routes.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
