"""The dashboard in a real browser: Debian's chromium, headless, driven by Selenium.

uvicorn serves the app in a thread of this process on a free loopback port, over a real
database. The test checks the numbers shown against the database, requeues a row as admin,
shows that a viewer cannot, and takes screenshots: into docs/img/ for docs/dashboard.md when
PGQE_SCREENSHOTS=docs (so an ordinary run leaves the checkout clean), else into a temporary
directory.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn

from pgqueue_enricher.dashboard import basic_auth_role, create_app
from tests.support.dashboard_rows import ADMIN_PASSWORD, VIEWER_PASSWORD, Seeded, build_volume, seed_small

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "img"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def served(db_url: str) -> Iterator[str]:
    """The dashboard on a free loopback port, served by uvicorn in a thread of this process."""
    app = create_app(database_url=db_url, role=basic_auth_role(VIEWER_PASSWORD, ADMIN_PASSWORD))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="pgqe-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Network.enable", {})
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def sign_in(driver: object, user: str, password: str) -> None:
    """Basic auth on every request of this browser, as a browser sends it once a user signed in."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})


def text_of(driver: object, element_id: str) -> str:
    """The element's text; found again when the overview's refresh replaced it mid-read."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    for _ in range(5):
        try:
            return driver.find_element(By.ID, element_id).text.strip()
        except StaleElementReferenceException:
            continue  # the live fragment was swapped between finding and reading: read the new one
    return driver.find_element(By.ID, element_id).text.strip()


async def seed_for_screens(conn: asyncpg.Connection) -> Seeded:
    await build_volume(conn, pointers=4_000, projects=8)
    seeded = await seed_small(conn)
    await conn.execute(
        """
        INSERT INTO pgqueue_enricher_workers (worker_id, host, pid, version, expires_at, in_flight, listener_state)
        VALUES ('worker-a', 'enricher-1', 4242, '0.1.0', now() + interval '1 hour', 3, 'listening'),
               ('worker-b', 'enricher-2', 4343, '0.1.0', now() + interval '1 hour', 2, 'listening')
        """
    )
    await conn.execute(
        "UPDATE pgqueue_enricher_provider_state SET rpm_limit = 600, admitted_rpm = 240, quota_rpm = 1000, "
        "admitted_total = 51234, rejected_total = 17 WHERE provider = 'gemini'"
    )
    return seeded


async def db_counts(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT enrichment_status, count(*) FROM pointers GROUP BY 1")
    return {r[0]: r[1] for r in rows}


async def test_an_operator_reads_the_numbers_requeues_as_admin_and_a_viewer_cannot(
    served: str, browser: object, conn: asyncpg.Connection, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    seeded = await seed_for_screens(conn)
    driver = browser
    shots = DOCS_IMAGES if os.environ.get("PGQE_SCREENSHOTS") == "docs" else tmp_path
    shots.mkdir(parents=True, exist_ok=True)

    # Overview as admin: the counts shown are the database's.
    sign_in(driver, "admin", ADMIN_PASSWORD)
    await asyncio.to_thread(driver.get, f"{served}/")
    counts = await db_counts(conn)
    for status in ("pending", "processing", "complete", "failed"):
        assert text_of(driver, f"count-{status}") == f"{counts.get(status, 0):,}", status
    assert text_of(driver, "live-workers") == "2"
    assert text_of(driver, "role") == "signed in as admin"
    driver.save_screenshot(str(shots / "dashboard-overview.png"))

    # The overview refreshes itself: a row changes, the page follows without a reload.
    before = counts["pending"]
    await conn.execute("UPDATE pointers SET enrichment_status = 'complete' WHERE id = $1", seeded.pending[0])
    deadline = time.monotonic() + 30
    while text_of(driver, "count-pending") != f"{before - 1:,}":
        assert time.monotonic() < deadline, "the overview did not refresh within 30 s (it polls every 5 s)"
        await asyncio.sleep(0.2)

    for path, name in (
        ("/projects", "projects"),
        ("/failures", "failures"),
        ("/providers", "providers"),
        ("/workers", "workers"),
        (f"/pointers/{seeded.complete}", "pointer"),
    ):
        await asyncio.to_thread(driver.get, f"{served}{path}")
        driver.save_screenshot(str(shots / f"dashboard-{name}.png"))
    assert text_of(driver, "stamp-model-version") == "gemini-3-flash-preview-001"

    # A failed pointer's page shows the row as the database has it, its hostile title as text.
    target = seeded.failed[0]
    row = await conn.fetchrow(
        "SELECT title, enrichment_attempts, enrichment_error FROM pointers WHERE id = $1", target
    )
    await asyncio.to_thread(driver.get, f"{served}/pointers/{target}")
    assert text_of(driver, "pointer-title") == row["title"]
    assert text_of(driver, "pointer-attempts") == str(row["enrichment_attempts"])
    assert text_of(driver, "pointer-error") == row["enrichment_error"]
    assert text_of(driver, "pointer-status") == "failed"
    assert driver.execute_script("return document.scripts.length") == 0, "the title's script tag is text"
    admin_token = driver.find_element(By.NAME, "csrf_token").get_attribute("value")

    # A viewer sees the same page without the button, and a forged POST is refused.
    sign_in(driver, "viewer", VIEWER_PASSWORD)
    await asyncio.to_thread(driver.get, f"{served}/pointers/{target}")
    assert text_of(driver, "role") == "signed in as viewer"
    assert driver.find_elements(By.ID, "requeue") == []
    status = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        const body = new URLSearchParams({pointer_id: arguments[0], csrf_token: arguments[1]});
        fetch("/actions/requeue-pointer", {method: "POST", body}).then(r => done(r.status));
        """,
        str(target),
        admin_token,
    )
    assert status == 403
    assert await conn.fetchval("SELECT enrichment_status FROM pointers WHERE id = $1", target) == "failed"

    # The admin presses the button: the page says one row was touched, and the row is pending.
    sign_in(driver, "admin", ADMIN_PASSWORD)
    await asyncio.to_thread(driver.get, f"{served}/pointers/{target}")
    await asyncio.to_thread(driver.find_element(By.ID, "requeue").click)
    # The click returns once the form is submitted, not once the answer is shown.
    answer = await asyncio.to_thread(
        WebDriverWait(driver, 20).until, expected_conditions.presence_of_element_located((By.ID, "touched"))
    )
    assert answer.text.strip() == "1"
    driver.save_screenshot(str(shots / "dashboard-requeued.png"))
    assert len(list(shots.glob("dashboard-*.png"))) == 7
    assert await conn.fetchval("SELECT enrichment_status FROM pointers WHERE id = $1", target) == "pending"
