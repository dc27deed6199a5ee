"""The dashboard over HTTP against a real database: auth, roles, CSRF, escaping, secrets, bad input."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import structlog
from fastapi import FastAPI, Request

from pgqueue_enricher.dashboard import basic_auth_role, create_app
from pgqueue_enricher.redact import register_settings_secrets
from pgqueue_enricher.settings import Settings
from tests.support.dashboard_rows import (
    ADMIN_PASSWORD,
    GEMINI_KEY,
    HOSTILE,
    VIEWER_PASSWORD,
    Seeded,
    seed_small,
)

VIEWER = (("viewer", VIEWER_PASSWORD),)
ADMIN = (("admin", ADMIN_PASSWORD),)
PAGES = ("/", "/overview/live", "/projects", "/failures", "/providers", "/workers")


@pytest.fixture
async def seeded(conn: asyncpg.Connection) -> Seeded:
    settings = Settings(
        gemini_api_key=GEMINI_KEY,
        dashboard_viewer_password=VIEWER_PASSWORD,
        dashboard_admin_password=ADMIN_PASSWORD,
    )
    register_settings_secrets(settings)
    return await seed_small(conn)


@pytest.fixture
async def client(db_url: str, seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(database_url=db_url, role=basic_auth_role(VIEWER_PASSWORD, ADMIN_PASSWORD))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as http:
        yield http


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert match, "an admin's page carries a CSRF token"
    return match[1]


async def status_of(conn: asyncpg.Connection, pointer_id: uuid.UUID) -> str:
    return await conn.fetchval("SELECT enrichment_status FROM pointers WHERE id = $1", pointer_id)


async def test_every_page_needs_credentials(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        response = await client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Basic")
        assert "Sign in" in response.text
    wrong = await client.get("/", auth=("admin", "not-the-password"))
    assert wrong.status_code == 401
    for header in ("Basic !!!not-base64", "Bearer abc", "Basic " + "YWRtaW4="):  # the last: no colon
        assert (await client.get("/", headers={"Authorization": header})).status_code == 401


async def test_a_viewer_reads_every_page_but_cannot_act(
    client: httpx.AsyncClient, conn: asyncpg.Connection, seeded: Seeded
) -> None:
    for path in (*PAGES, f"/pointers/{seeded.failed[0]}"):
        response = await client.get(path, auth=VIEWER[0])
        assert response.status_code == 200, path
        assert "csrf_token" not in response.text, "a viewer is offered no action"
    admin_page = await client.get(f"/pointers/{seeded.failed[0]}", auth=ADMIN[0])
    response = await client.post(
        "/actions/requeue-pointer",
        auth=VIEWER[0],
        data={"pointer_id": str(seeded.failed[0]), "csrf_token": csrf_token(admin_page.text)},
    )
    assert response.status_code == 403
    assert "Only an admin" in response.text
    assert await status_of(conn, seeded.failed[0]) == "failed"


async def test_an_admin_requeues_one_row_and_is_told_how_many(
    client: httpx.AsyncClient, conn: asyncpg.Connection, seeded: Seeded
) -> None:
    page = await client.get(f"/pointers/{seeded.failed[0]}", auth=ADMIN[0])
    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            "/actions/requeue-pointer",
            auth=ADMIN[0],
            data={"pointer_id": str(seeded.failed[0]), "csrf_token": csrf_token(page.text)},
        )
    assert response.status_code == 200
    assert re.search(r'id="touched">1<', response.text)
    [logged] = [event for event in logs if event["event"] == "dashboard_action"]
    assert logged["who"] == "admin" and logged["rows"] == 1
    assert logged["action"] == f"requeue failed pointer {seeded.failed[0]}"
    assert await status_of(conn, seeded.failed[0]) == "pending"
    assert await status_of(conn, seeded.failed[1]) == "failed"


async def test_a_post_without_a_valid_csrf_token_is_refused(
    client: httpx.AsyncClient, conn: asyncpg.Connection, seeded: Seeded, db_url: str
) -> None:
    for data in (
        {"pointer_id": str(seeded.failed[0])},
        {"pointer_id": str(seeded.failed[0]), "csrf_token": "0" * 64},
    ):
        response = await client.post("/actions/requeue-pointer", auth=ADMIN[0], data=data)
        assert response.status_code == 403
        assert "security token" in response.text
    # A token from another process (another secret) is refused too.
    other = create_app(database_url=db_url, role=basic_auth_role(VIEWER_PASSWORD, ADMIN_PASSWORD))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://o") as http:
        foreign = csrf_token((await http.get(f"/pointers/{seeded.failed[0]}", auth=ADMIN[0])).text)
    response = await client.post(
        "/actions/requeue-pointer",
        auth=ADMIN[0],
        data={"pointer_id": str(seeded.failed[0]), "csrf_token": foreign},
    )
    assert response.status_code == 403
    assert await status_of(conn, seeded.failed[0]) == "failed"


async def test_a_get_never_changes_a_row(
    client: httpx.AsyncClient, conn: asyncpg.Connection, seeded: Seeded
) -> None:
    response = await client.get(
        "/actions/requeue-pointer", auth=ADMIN[0], params={"pointer_id": str(seeded.failed[0])}
    )
    assert response.status_code == 405
    assert "kind of request" in response.text
    assert await status_of(conn, seeded.failed[0]) == "failed"


async def test_requeue_of_a_failure_group_and_of_a_project(
    client: httpx.AsyncClient, conn: asyncpg.Connection, seeded: Seeded
) -> None:
    page = await client.get("/failures", auth=ADMIN[0])
    token = csrf_token(page.text)
    key = await conn.fetchval("SELECT md5(enrichment_error) FROM pointers WHERE id = $1", seeded.failed[0])
    response = await client.post(
        "/actions/requeue-group", auth=ADMIN[0], data={"reason_key": key, "csrf_token": token}
    )
    assert re.search(r'id="touched">2<', response.text), "the two rows of the script-tag reason"
    assert await status_of(conn, seeded.failed[1]) == "failed"
    response = await client.post(
        "/actions/requeue-project",
        auth=ADMIN[0],
        data={"project_id": str(seeded.project_id), "csrf_token": token},
    )
    assert re.search(r'id="touched">1<', response.text)
    assert await status_of(conn, seeded.failed[1]) == "pending"


async def test_moving_rows_between_lanes_and_lifting_a_pause(
    client: httpx.AsyncClient, conn: asyncpg.Connection, seeded: Seeded
) -> None:
    token = csrf_token((await client.get("/projects", auth=ADMIN[0])).text)
    response = await client.post(
        "/actions/move-lane",
        auth=ADMIN[0],
        data={"project_id": str(seeded.project_id), "lane": "backfill", "csrf_token": token},
    )
    assert re.search(r'id="touched">6<', response.text), "3 pending and 3 failed rows"
    lanes = await conn.fetch(
        "SELECT DISTINCT enrichment_lane FROM pointers WHERE enrichment_status = 'pending'"
    )
    assert [r[0] for r in lanes] == ["backfill"]

    await conn.execute(
        "UPDATE pgqueue_enricher_provider_state SET paused_kind = 'key_refused', paused_reason = $1, "
        "paused_since = now(), next_probe_at = now() + interval '30 seconds' WHERE provider = 'gemini'",
        f"key refused {HOSTILE}",
    )
    overview = await client.get("/", auth=VIEWER[0])
    assert 'id="pause-gemini"' in overview.text
    providers = await client.get("/providers", auth=ADMIN[0])
    assert "Lift the pause" in providers.text
    response = await client.post(
        "/actions/resume-provider", auth=ADMIN[0], data={"provider": "gemini", "csrf_token": token}
    )
    assert re.search(r'id="touched">1<', response.text)
    assert (
        await conn.fetchval(
            "SELECT paused_since FROM pgqueue_enricher_provider_state WHERE provider = 'gemini'"
        )
        is None
    )


async def test_text_from_the_database_is_inert(client: httpx.AsyncClient, seeded: Seeded) -> None:
    pages = [
        await client.get(path, auth=ADMIN[0])
        for path in (*PAGES, f"/pointers/{seeded.failed[0]}", f"/pointers/{seeded.complete}")
    ]
    for page in pages:
        assert "<script>alert" not in page.text, page.url
        assert "onerror=alert" not in page.text.replace("onerror=alert(1)&gt;", ""), page.url
        assert re.findall(r"<script[^>]*>", page.text) in ([], ['<script src="/static/refresh.js" defer>'])
    failed_page = pages[-2].text
    assert "Bad &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in failed_page, "the title, escaped"
    assert "crop rejected: &lt;script&gt;" in failed_page, "the error, escaped"
    complete_page = pages[-1].text
    assert "<strong>wall section</strong>" in complete_page, "markdown is rendered"
    assert "&lt;img src=x onerror=alert(1)&gt;" in complete_page, "raw HTML in markdown stays text"
    assert 'href="javascript:' not in complete_page, "the link validator drops javascript: URLs"
    assert "gemini-3-flash-preview-001" in complete_page and "voyage-3" in complete_page
    assert "S-101" in complete_page and "$0.0021" in complete_page


async def test_no_secret_reaches_any_page(client: httpx.AsyncClient, seeded: Seeded) -> None:
    paths = (*PAGES, *(f"/pointers/{i}" for i in seeded.failed), "/pointers/nope", "/no-such-page")
    for auth in (None, VIEWER[0], ADMIN[0]):
        for path in paths:
            text = (await client.get(path, auth=auth)).text
            for secret in (GEMINI_KEY, VIEWER_PASSWORD, ADMIN_PASSWORD):
                assert secret not in text, (path, auth)
    failures = (await client.get("/failures", auth=VIEWER[0])).text
    assert "Gemini refused key ***" in failures


async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient, seeded: Seeded) -> None:
    for path, auth in (("/", ADMIN[0]), ("/", None), ("/static/dashboard.css", None), ("/nothing", ADMIN[0])):
        response = await client.get(path, auth=auth)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert response.headers["x-frame-options"] == "DENY"
    page = (await client.get("/", auth=ADMIN[0])).text
    assert " style=" not in page and " onclick=" not in page and " onload=" not in page


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "sentence"),
    [
        ("GET", "/pointers/not-a-uuid", None, 400, "is not a pointer id"),
        ("GET", "/pointers?id=12345", None, 400, "is not a pointer id"),
        ("GET", f"/pointers/{uuid.UUID(int=7)}", None, 404, "No pointer has the id"),
        ("GET", "/no/such/page", None, 404, "no such page"),
        ("POST", "/actions/move-lane", {"lane": "express"}, 400, "There is no lane"),
        ("POST", "/actions/requeue-pointer", {"pointer_id": "x'; drop table"}, 400, "is not a pointer id"),
        (
            "POST",
            "/actions/requeue-project",
            {"project_id": str(uuid.UUID(int=9))},
            404,
            "No project has the id",
        ),
        ("POST", "/actions/requeue-group", {"reason_key": "zz"}, 400, "failure group does not exist"),
        ("POST", "/actions/resume-provider", {"provider": "openai"}, 400, "There is no provider"),
    ],
)
async def test_bad_input_gets_a_4xx_page_with_a_sentence(
    client: httpx.AsyncClient, method: str, path: str, data: dict | None, status: int, sentence: str
) -> None:
    if method == "POST":
        token = csrf_token((await client.get("/projects", auth=ADMIN[0])).text)
        response = await client.post(path, auth=ADMIN[0], data={**(data or {}), "csrf_token": token})
    else:
        response = await client.get(path, auth=ADMIN[0])
    assert response.status_code == status
    assert sentence in response.text
    assert "Traceback" not in response.text and 'File "' not in response.text


async def test_a_pointer_lookup_redirects_to_its_page(client: httpx.AsyncClient, seeded: Seeded) -> None:
    response = await client.get("/pointers", params={"id": str(seeded.complete)}, auth=VIEWER[0])
    assert response.status_code == 303
    assert response.headers["location"] == f"/pointers/{seeded.complete}"


async def test_mounted_in_a_fastapi_app_with_the_hosts_role(
    db_url: str, conn: asyncpg.Connection, seeded: Seeded
) -> None:
    async def role(request: Request) -> str | None:
        # The host's own auth, here a header its gateway would set.
        return {"t-admin": "admin", "t-viewer": "viewer"}.get(request.headers.get("x-host-token", ""))

    host = FastAPI()

    @host.get("/api/health")
    def health() -> dict[str, str]:
        return {"ok": "yes"}

    host.mount("/enrichment", create_app(database_url=db_url, role=role))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=host), base_url="http://host") as http:
        assert (await http.get("/api/health")).json() == {"ok": "yes"}
        refused = await http.get("/enrichment/")
        assert refused.status_code == 403
        page = await http.get("/enrichment/failures", headers={"x-host-token": "t-viewer"})
        assert page.status_code == 200
        assert 'href="/enrichment/static/dashboard.css"' in page.text, "links carry the mount prefix"
        assert f'href="/enrichment/pointers/{seeded.failed[0]}"' in page.text
        assert (await http.get("/enrichment/static/refresh.js")).status_code == 200
        admin_page = await http.get(
            f"/enrichment/pointers/{seeded.failed[0]}", headers={"x-host-token": "t-admin"}
        )
        assert 'action="/enrichment/actions/requeue-pointer"' in admin_page.text
        done = await http.post(
            "/enrichment/actions/requeue-pointer",
            headers={"x-host-token": "t-admin"},
            data={"pointer_id": str(seeded.failed[0]), "csrf_token": csrf_token(admin_page.text)},
        )
        assert done.status_code == 200
    assert await status_of(conn, seeded.failed[0]) == "pending"


async def test_an_unexpected_error_gets_a_500_page_without_details(db_url: str) -> None:
    register_settings_secrets(Settings(_env_file=None, gemini_api_key=GEMINI_KEY))  # type: ignore[call-arg]

    def role(request: Request) -> str:
        raise RuntimeError(f"host auth exploded with {GEMINI_KEY}")

    app = create_app(database_url=db_url, role=role)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://dash") as http:
        with structlog.testing.capture_logs() as logs:
            response = await http.get("/")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "exploded" not in response.text and "Traceback" not in response.text
    assert response.headers["x-frame-options"] == "DENY"
    [logged] = [event for event in logs if event["event"] == "dashboard_error"]
    assert "exploded" in logged["reason"] and GEMINI_KEY not in logged["reason"]
