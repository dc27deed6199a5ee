"""The dashboard as an ASGI app: standalone (`pgqueue-enricher dashboard`) or mounted by a host.

Every route goes through `_page`, which resolves the role, turns bad input into a 4xx page
with a sentence, a database outage into a 503 page and anything else into a 500 page without
details (the cause goes to the log, scrubbed). GETs only read; each action is a POST that
needs the admin role and a CSRF token, says how many rows it touched and is logged.

Links are built from the scope's root_path, so the app works under any mount prefix.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import pgqueue_enricher.dashboard.data as data
from pgqueue_enricher.dashboard.render import environment
from pgqueue_enricher.dashboard.security import (
    SECURITY_HEADERS,
    Csrf,
    Role,
    RoleCallable,
    identity,
    resolve_role,
)
from pgqueue_enricher.logs import get_logger
from pgqueue_enricher.redact import exception_reason, scrub
from pgqueue_enricher.settings import plain_dsn
from pgqueue_enricher.vocabulary import ENRICHMENT_LANES

log = get_logger("pgqueue_enricher.dashboard")
REFRESH_SECONDS = 5


class Problem(Exception):
    """Bad input or a refusal: a status code and one sentence for the person."""

    def __init__(self, status: int, sentence: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(sentence)
        self.status = status
        self.sentence = sentence
        self.headers = headers or {}


@dataclass
class Viewer:
    """The caller of one request, as the templates see it."""

    role: Role
    who: str
    csrf_token: str
    base: str

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass
class Database:
    """One pool per app, opened at the first request: a mounted app gets no lifespan events."""

    url: str
    pool: asyncpg.Pool | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def get(self) -> asyncpg.Pool:
        if self.pool is None:
            async with self.lock:
                if self.pool is None:
                    # No statement cache: the URL may be a transaction pooler's.
                    self.pool = await asyncpg.create_pool(
                        self.url, min_size=0, max_size=4, statement_cache_size=0, timeout=10
                    )
        return self.pool

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


class SecurityHeaders:
    """Adds the security headers to every response, static files and error pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode().title() not in SECURITY_HEADERS
                ]
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    database_url: str,
    role: RoleCallable,
    *,
    csrf_secret: bytes | None = None,
    title: str = "pgqueue-enricher",
) -> ASGIApp:
    """The dashboard. `role(request)` (sync or async) returns "viewer", "admin" or None (refused).

    Mount it in FastAPI with `app.mount("/enrichment", create_app(database_url=..., role=...))`.
    Several processes serving one URL must share `csrf_secret`.
    """
    templates = environment()
    csrf = Csrf(csrf_secret)
    database = Database(plain_dsn(database_url))
    basic_auth = bool(getattr(role, "basic_auth", False))

    def render(
        request: Request, name: str, viewer: Viewer | None = None, *, http_status: int = 200, **context: Any
    ) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        html = templates.get_template(name).render(
            viewer=viewer,
            base=base,
            title=title,
            refresh_seconds=REFRESH_SECONDS,
            lanes=ENRICHMENT_LANES,
            **context,
        )
        # A belt on top of the per-value scrub: nothing registered as a secret leaves.
        return HTMLResponse(scrub(html), status_code=http_status)

    def problem_page(request: Request, problem: Problem, viewer: Viewer | None = None) -> HTMLResponse:
        response = render(
            request,
            "problem.html",
            viewer,
            http_status=problem.status,
            code=problem.status,
            sentence=problem.sentence,
        )
        response.headers.update(problem.headers)
        return response

    async def caller(request: Request) -> Viewer:
        found = await resolve_role(role, request)
        if found is None:
            if basic_auth:
                raise Problem(
                    401,
                    "Sign in as viewer or admin to see the dashboard.",
                    {"WWW-Authenticate": 'Basic realm="pgqueue-enricher", charset="UTF-8"'},
                )
            raise Problem(403, "Your account may not see the enrichment dashboard.")
        who = identity(request, found)
        return Viewer(found, who, csrf.token(who), request.scope.get("root_path", "").rstrip("/"))

    def page(
        handler: Callable[[Request, Viewer, asyncpg.Pool], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            viewer = None
            try:
                viewer = await caller(request)
                return await handler(request, viewer, await database.get())
            except Problem as problem:
                return problem_page(request, problem, viewer)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("dashboard_database_error", path=request.url.path, reason=exception_reason(exc))
                return problem_page(
                    request, Problem(503, "The database did not answer; try again in a moment."), viewer
                )
            except Exception as exc:
                log.error("dashboard_error", path=request.url.path, reason=exception_reason(exc))
                return problem_page(
                    request, Problem(500, "Something went wrong on our side; the log says what."), viewer
                )

        return endpoint

    def action(
        handler: Callable[[Request, Viewer, asyncpg.Pool, FormData], Awaitable[tuple[str, int, str]]],
    ) -> Callable[[Request], Awaitable[Response]]:
        """An admin's POST: CSRF-checked, counted, logged, answered with what it touched."""

        async def run(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
            if not viewer.admin:
                raise Problem(403, "Only an admin can change rows; you are signed in as a viewer.")
            form = await request.form()
            if not csrf.valid(viewer.who, _text(form, "csrf_token")):
                raise Problem(
                    403, "The form's security token is missing or stale: reload the page and try again."
                )
            what, touched, back = await handler(request, viewer, pool, form)
            log.info("dashboard_action", who=viewer.who, action=what, rows=touched)
            return render(request, "done.html", viewer=viewer, what=what, touched=touched, back=back)

        return page(run)

    # -- pages ------------------------------------------------------------------------------

    async def overview_page(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        return render(request, "overview.html", viewer=viewer, o=await data.overview(pool))

    async def overview_live(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        return render(request, "_overview_live.html", viewer=viewer, o=await data.overview(pool))

    async def projects_page(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        return render(request, "projects.html", viewer=viewer, projects=await data.projects(pool))

    async def failures_page(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        return render(request, "failures.html", viewer=viewer, groups=await data.failures(pool))

    async def pointer_lookup(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        pointer_id = _uuid(request.query_params.get("id", ""), "pointer id")
        return RedirectResponse(f"{viewer.base}/pointers/{pointer_id}", status_code=303)

    async def pointer_page(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        pointer_id = _uuid(request.path_params["pointer_id"], "pointer id")
        found = await data.pointer(pool, pointer_id)
        if found is None:
            raise Problem(404, f"No pointer has the id {pointer_id}.")
        return render(request, "pointer.html", viewer=viewer, p=found)

    async def providers_page(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        return render(request, "providers.html", viewer=viewer, providers=await data.providers(pool))

    async def workers_page(request: Request, viewer: Viewer, pool: asyncpg.Pool) -> Response:
        return render(request, "workers.html", viewer=viewer, workers=await data.workers(pool))

    # -- actions ----------------------------------------------------------------------------

    async def requeue_pointer(
        request: Request, viewer: Viewer, pool: asyncpg.Pool, form: FormData
    ) -> tuple[str, int, str]:
        pointer_id = _uuid(_text(form, "pointer_id"), "pointer id")
        touched = await data.requeue_failed(pool, pointer_ids=[pointer_id])
        return f"requeue failed pointer {pointer_id}", touched, f"{viewer.base}/pointers/{pointer_id}"

    async def requeue_group(
        request: Request, viewer: Viewer, pool: asyncpg.Pool, form: FormData
    ) -> tuple[str, int, str]:
        key = _text(form, "reason_key")
        if len(key) != 32 or any(c not in "0123456789abcdef" for c in key):
            raise Problem(400, "That failure group does not exist; reload the failures page.")
        touched = await data.requeue_failure_group(pool, key)
        return f"requeue failure group {key}", touched, f"{viewer.base}/failures"

    async def requeue_project(
        request: Request, viewer: Viewer, pool: asyncpg.Pool, form: FormData
    ) -> tuple[str, int, str]:
        project_id = _uuid(_text(form, "project_id"), "project id")
        if not await data.project_exists(pool, project_id):
            raise Problem(404, f"No project has the id {project_id}.")
        touched = await data.requeue_failed(pool, project_id=project_id)
        return f"requeue failed pointers of project {project_id}", touched, f"{viewer.base}/projects"

    async def move_lane(
        request: Request, viewer: Viewer, pool: asyncpg.Pool, form: FormData
    ) -> tuple[str, int, str]:
        lane = _text(form, "lane")
        if lane not in ENRICHMENT_LANES:
            raise Problem(400, f"There is no lane {lane!r}: choose {' or '.join(ENRICHMENT_LANES)}.")
        include_complete = _text(form, "include_complete") == "yes"
        if _text(form, "pointer_id"):
            pointer_id = _uuid(_text(form, "pointer_id"), "pointer id")
            touched = await data.move_to_lane(
                pool, lane, pointer_ids=[pointer_id], include_complete=include_complete
            )
            return (
                f"move pointer {pointer_id} to lane {lane}",
                touched,
                f"{viewer.base}/pointers/{pointer_id}",
            )
        project_id = _uuid(_text(form, "project_id"), "project id")
        if not await data.project_exists(pool, project_id):
            raise Problem(404, f"No project has the id {project_id}.")
        touched = await data.move_to_lane(
            pool, lane, project_id=project_id, include_complete=include_complete
        )
        return f"move pointers of project {project_id} to lane {lane}", touched, f"{viewer.base}/projects"

    async def resume_provider(
        request: Request, viewer: Viewer, pool: asyncpg.Pool, form: FormData
    ) -> tuple[str, int, str]:
        provider = _text(form, "provider")
        if provider not in data.PROVIDERS:
            raise Problem(400, f"There is no provider {provider!r}: choose {' or '.join(data.PROVIDERS)}.")
        touched = await data.resume_provider(pool, provider)
        return f"lift the pause of {provider}", touched, f"{viewer.base}/providers"

    async def http_problem(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        sentence = {
            404: "There is no such page here.",
            405: "That address does not take this kind of request (actions are buttons on the pages).",
        }.get(status, "The request could not be served.")
        return problem_page(request, Problem(status, sentence))

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("dashboard_error", path=request.url.path, reason=exception_reason(exc))
        response = problem_page(request, Problem(500, "Something went wrong on our side; the log says what."))
        response.headers.update(SECURITY_HEADERS)
        return response

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        yield
        await database.close()

    static = StaticFiles(directory=str(resources.files("pgqueue_enricher.dashboard") / "static"))
    routes = [
        Route("/", page(overview_page)),
        Route("/overview/live", page(overview_live)),
        Route("/projects", page(projects_page)),
        Route("/failures", page(failures_page)),
        Route("/pointers", page(pointer_lookup)),
        Route("/pointers/{pointer_id}", page(pointer_page)),
        Route("/providers", page(providers_page)),
        Route("/workers", page(workers_page)),
        Route("/actions/requeue-pointer", action(requeue_pointer), methods=["POST"]),
        Route("/actions/requeue-group", action(requeue_group), methods=["POST"]),
        Route("/actions/requeue-project", action(requeue_project), methods=["POST"]),
        Route("/actions/move-lane", action(move_lane), methods=["POST"]),
        Route("/actions/resume-provider", action(resume_provider), methods=["POST"]),
        Mount("/static", static, name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_problem, 500: server_error},
        lifespan=lifespan,
    )
    app.state.database = database
    return SecurityHeaders(app)


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise Problem(
            400, f"{shown!r} is not a {what}: expected a UUID such as 123e4567-e89b-12d3-a456-426614174000."
        ) from None
