"""`doctor`: a preflight of a deployment with its real settings, before rows start failing.

Each check answers one question an operator would otherwise learn from failed rows or empty
searches (a wrong key, a missing bucket, LISTEN behind a transaction pooler, a missing
migration, an ivfflat index trained on no data). Doctor changes no row: the database is read
inside a READ ONLY transaction, Gemini is only asked to look its model up (no generation),
and Voyage embeds one short text, whose cost the check prints. Every sentence that leaves
here passes through `scrub`, so no key or password is ever shown.

A setting that cannot work at all (missing or malformed) raises ConfigError before any
check runs: that is exit code 2, not a failed check.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import httpx

from pgqueue_enricher.errors import EnrichmentFailure
from pgqueue_enricher.providers.checks import check_http_url, check_key
from pgqueue_enricher.providers.pricing import PER_MILLION
from pgqueue_enricher.providers.types import EMBEDDING_DIMENSIONS
from pgqueue_enricher.redact import redact_url, register_settings_secrets, scrub
from pgqueue_enricher.schema import sqlfiles
from pgqueue_enricher.schema.migrations import behind_head, head_revision
from pgqueue_enricher.schema.sqlfiles import blocks
from pgqueue_enricher.settings import Settings

CONNECT_TIMEOUT = 10.0
# How long the LISTEN check waits for its notification: a direct session answers in
# milliseconds; a transaction pooler never delivers it.
LISTEN_TIMEOUT = 5.0
HTTP_TIMEOUT = 15.0
# A catalog read or the count of embedded rows; a hung server fails the check instead of doctor.
QUERY_TIMEOUT = 60.0
SUPABASE_TRANSACTION_POOLER_PORT = 6543
# What the Voyage check embeds: a few tokens, billed like any other embedding.
VOYAGE_PROBE_TEXT = "pgqueue-enricher doctor"
# ivfflat: an index with fewer than this many rows per list was trained on too little data.
IVFFLAT_MIN_ROWS_PER_LIST = 10
# ivfflat: `lists` may be this factor away from pgvector's advice before the check fails.
IVFFLAT_LISTS_TOLERANCE = 4.0
IVFFLAT_DEFAULT_LISTS = 100  # pgvector's default when CREATE INDEX gives no `lists`
# Maestro's hybrid_search ranks by cosine similarity (`<=>`): only this operator class serves it.
COSINE_OPCLASS = "vector_cosine_ops"


def query(name: str) -> str:
    """A named statement of sql/doctor.sql, or one the worker runs itself (sql/queries.sql:
    the schema revision, the listener's ping), so that doctor checks what `run` does."""
    own = blocks("doctor.sql")
    return own[name] if name in own else sqlfiles.query(name)


@dataclass(frozen=True)
class Check:
    """One line of the report: `fix` is the sentence that makes a failed check pass."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None

    def scrubbed(self) -> Check:
        return Check(self.name, self.ok, scrub(self.detail), scrub(self.fix) if self.fix else None)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name, False, detail, fix)


def check_settings(settings: Settings) -> None:
    """The settings `run` needs, each present and well formed; ConfigError names the first
    one that is not (exit 2). Nothing is contacted yet."""
    register_settings_secrets(settings)
    settings.require_database_url()
    settings.check_provider_config()
    if settings.enricher_provider == "gemini":
        check_key("GEMINI_API_KEY", settings.gemini_api_key)
        check_key("VOYAGE_API_KEY", settings.voyage_api_key)
    if not settings.storage_dir:
        check_http_url(
            "SUPABASE_URL", settings.supabase_url, "the project URL, e.g. https://<ref>.supabase.co"
        )
        check_key("SUPABASE_SERVICE_KEY", settings.supabase_service_key)


async def run_checks(settings: Settings, *, listen_timeout: float = LISTEN_TIMEOUT) -> list[Check]:
    """Every check, in the order an operator fixes them; each failure is a Check, never raised."""
    check_settings(settings)
    checks: list[Check] = []
    conn = await _connect_database(settings, checks)
    try:
        for name, database_check in DATABASE_CHECKS:
            if conn is None:
                checks.append(
                    failed(name, "not checked: the database did not answer", "fix the database check first")
                )
            else:
                checks.append(await _guarded(name, database_check(conn, settings)))
        checks.append(await _guarded("listen", check_listen(settings, listen_timeout)))
    finally:
        if conn is not None:
            await _close(conn)
    checks.append(await _guarded("storage", check_storage(settings)))
    checks.append(await _guarded("gemini", check_gemini(settings)))
    checks.append(await _guarded("voyage", check_voyage(settings)))
    return [check.scrubbed() for check in checks]


async def _guarded(name: str, work: Awaitable[Check]) -> Check:
    """A check that raised is a failed check with what was raised, not a traceback."""
    try:
        return await work
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, httpx.HTTPError, TimeoutError) as exc:
        return failed(
            name,
            f"the check could not finish ({type(exc).__name__}: {' '.join(str(exc).split())[:240]})",
            "fix what the error names and run doctor again",
        )


async def _close(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(conn.close(), 2)
    if not conn.is_closed():
        conn.terminate()


# -- the database ---------------------------------------------------------------------------


async def _connect_database(settings: Settings, checks: list[Check]) -> asyncpg.Connection | None:
    url = settings.require_database_url()
    where = redact_url(url)
    try:
        # No statement cache: DATABASE_URL may be a transaction pooler.
        conn = await asyncpg.connect(
            url, statement_cache_size=0, timeout=CONNECT_TIMEOUT, command_timeout=QUERY_TIMEOUT
        )
        try:
            row = await conn.fetchrow(query("server_describe"))
        except BaseException:
            await _close(conn)
            raise
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = " ".join(str(exc).split())[:240] or type(exc).__name__
        checks.append(
            failed(
                "database",
                f"could not connect to {where} ({type(exc).__name__}: {reason})",
                "check DATABASE_URL (host, port, database name, user and password) and that the "
                "server accepts connections from this machine",
            )
        )
        return None
    checks.append(
        passed(
            "database", f"PostgreSQL {row['version']} answers: database {row['database']}, role {row['role']}"
        )
    )
    return conn


async def check_schema(conn: asyncpg.Connection, settings: Settings) -> Check:
    head = head_revision()
    async with conn.transaction(readonly=True):
        migrated = await conn.fetchval(query("schema_version_table_exists"))
        current = await conn.fetchval(query("schema_revision")) if migrated else None
    if current == head:
        return passed("schema", f"at head ({head})")
    if current is None:
        return failed(
            "schema",
            "not migrated: pgqueue_enricher_alembic_version is missing or empty",
            "run `pgqueue-enricher migrate` with this DATABASE_URL",
        )
    if not behind_head(current):
        return failed(
            "schema",
            f"at revision {current}, newer than this installation's head {head}",
            "upgrade pgqueue-enricher to the version that migrated this database",
        )
    return failed("schema", f"at revision {current}, head is {head}", "run `pgqueue-enricher migrate`")


async def check_privileges(conn: asyncpg.Connection, settings: Settings) -> Check:
    async with conn.transaction(readonly=True):
        rows = await conn.fetch(query("role_missing_privileges"))
        role = await conn.fetchval("SELECT current_user")
    if not rows:
        return passed("privileges", f"role {role} may do everything `run` does")
    missing = [f"{r['privilege']} on {r['object']}" for r in rows if r["exists"]]
    absent = [r["object"] for r in rows if not r["exists"]]
    parts = []
    if absent:
        parts.append("missing: " + ", ".join(dict.fromkeys(absent)))
    if missing:
        parts.append(f"role {role} lacks " + ", ".join(missing))
    fix = (
        "run `pgqueue-enricher migrate` first"
        if absent
        else f"grant those privileges to {role} (or run the worker as the role that ran `migrate`)"
    )
    return failed("privileges", "; ".join(parts), fix)


async def check_vector(conn: asyncpg.Connection, settings: Settings) -> Check:
    async with conn.transaction(readonly=True):
        row = await conn.fetchrow(query("vector_extension"))
    wanted = f"vector({EMBEDDING_DIMENSIONS})"
    if row["version"] is None:
        return failed(
            "pgvector",
            "the vector extension is not installed in this database",
            "CREATE EXTENSION vector (Supabase: enable `vector` under Database > Extensions), then "
            "`pgqueue-enricher migrate`",
        )
    if row["embedding_type"] is None:
        return failed(
            "pgvector",
            f"pgvector {row['version']} is installed but pointers.embedding does not exist",
            "run `pgqueue-enricher migrate`",
        )
    if row["embedding_type"] != wanted:
        return failed(
            "pgvector",
            f"pointers.embedding is {row['embedding_type']}, the embeddings are {wanted}",
            f"change the column to {wanted} (VOYAGE_MODEL voyage-3 and voyage-3.5 give "
            f"{EMBEDDING_DIMENSIONS} dimensions)",
        )
    return passed("pgvector", f"pgvector {row['version']}; pointers.embedding is {wanted}")


def advised_lists(rows: int) -> int:
    """pgvector's advice for ivfflat: rows / 1000 up to a million rows, sqrt(rows) above."""
    return max(1, rows // 1000 if rows <= 1_000_000 else math.isqrt(rows))


def ivfflat_problem(lists: int, rows: int) -> str | None:
    """Why an ivfflat index with `lists` lists serves `rows` embeddings badly, or None.

    Postgres does not keep how many rows an index was built on, so the rule reads what it
    can: an ivfflat index trains its list centres on the rows present at CREATE INDEX, and
    with fewer than IVFFLAT_MIN_ROWS_PER_LIST rows per list (an empty table above all) the
    centres fit no data; and `lists` more than IVFFLAT_LISTS_TOLERANCE times away from
    pgvector's advice for today's rows means it was sized for another table."""
    if rows < lists * IVFFLAT_MIN_ROWS_PER_LIST:
        return (
            f"lists = {lists} but pointers holds {rows} embeddings (fewer than "
            f"{IVFFLAT_MIN_ROWS_PER_LIST} per list): an ivfflat index built on so few rows, or on an "
            "empty table, has list centres that fit no data and gives poor recall"
        )
    advice = advised_lists(rows)
    if lists > advice * IVFFLAT_LISTS_TOLERANCE or lists * IVFFLAT_LISTS_TOLERANCE < advice:
        return f"lists = {lists} is far from the {advice} that {rows} embeddings call for"
    return None


async def check_vector_index(conn: asyncpg.Connection, settings: Settings) -> Check:
    async with conn.transaction(readonly=True):
        indexes = await conn.fetch(query("vector_indexes"))
        rows = await conn.fetchval(query("pointers_count_embedded")) if indexes else 0
    hnsw_fix = (
        "CREATE INDEX CONCURRENTLY ON pointers USING hnsw (embedding vector_cosine_ops) (hnsw needs "
        "no training data), then drop the old index"
    )
    if not indexes:
        return failed(
            "vector index", "no index on pointers.embedding: every search scans the table", hnsw_fix
        )
    usable = [ix for ix in indexes if ix["valid"]]
    if not usable:
        names = ", ".join(ix["name"] for ix in indexes)
        return failed(
            "vector index",
            f"{names} is invalid (a concurrent index build that failed)",
            f"rebuild it: reindex index {names}",
        )
    cosine = [ix for ix in usable if ix["opclass"] == COSINE_OPCLASS]
    if not cosine:
        ix = usable[0]
        return failed(
            "vector index",
            f"{ix['name']} uses {ix['opclass']}, but searches order by cosine distance (<=>), "
            "which only a vector_cosine_ops index serves",
            hnsw_fix,
        )
    best = cosine[0]  # hnsw first (vector_indexes' order)
    if best["method"] == "hnsw":
        return passed("vector index", f"{best['name']} is hnsw")
    if best["method"] != "ivfflat":
        return passed("vector index", f"{best['name']} uses {best['method']}")
    lists = best["lists"] or IVFFLAT_DEFAULT_LISTS
    problem = ivfflat_problem(lists, rows)
    if problem is not None:
        return failed(
            "vector index",
            f"{best['name']} is ivfflat: {problem}",
            f"{hnsw_fix}; or, once the embeddings are loaded, rebuild {best['name']} with lists = "
            "rows / 1000 (sqrt(rows) above a million rows)",
        )
    return passed(
        "vector index",
        f"{best['name']} is ivfflat with lists = {lists} for {rows} embeddings (if it was created "
        "before the embeddings were loaded, REINDEX it once: Postgres does not record that)",
    )


DATABASE_CHECKS: tuple[tuple[str, Callable[[asyncpg.Connection, Settings], Awaitable[Check]]], ...] = (
    ("schema", check_schema),
    ("privileges", check_privileges),
    ("pgvector", check_vector),
    ("vector index", check_vector_index),
)


# -- LISTEN -------------------------------------------------------------------------------


async def check_listen(settings: Settings, wait_s: float) -> Check:
    """LISTEN on the listen URL, NOTIFY from a DATABASE_URL session, expect the notification.

    The notification must come from another session: behind a transaction pooler a NOTIFY
    sent on the listening connection may run on the very server connection that listens."""
    variable = "DATABASE_LISTEN_URL" if settings.database_listen_url else "DATABASE_URL"
    url = settings.listen_url()
    parts = urlsplit(url)
    where = redact_url(url)
    on_supabase_pooler = parts.port == SUPABASE_TRANSACTION_POOLER_PORT
    fix = (
        f"set DATABASE_LISTEN_URL to a direct or session-mode connection (Supabase: "
        f"db.<ref>.supabase.co:5432 or the session pooler on port 5432, not port "
        f"{SUPABASE_TRANSACTION_POOLER_PORT}); without it new rows wait for PASS2_POLL_INTERVAL"
    )
    if on_supabase_pooler and (parts.hostname or "").endswith("pooler.supabase.com"):
        return failed(
            "listen",
            f"{variable} is Supabase's transaction pooler (port {SUPABASE_TRANSACTION_POOLER_PORT}), "
            "which delivers no notifications",
            fix,
        )
    channel = "pgqe_doctor_" + secrets.token_hex(8)
    heard = asyncio.get_running_loop().create_future()

    def on_notify(*_args: object) -> None:
        if not heard.done():
            heard.set_result(None)

    listener = await asyncpg.connect(url, statement_cache_size=0, timeout=CONNECT_TIMEOUT)
    try:
        await listener.add_listener(channel, on_notify)
        sender = await asyncpg.connect(
            settings.require_database_url(), statement_cache_size=0, timeout=CONNECT_TIMEOUT
        )
        try:
            await sender.execute(query("listener_ping"), channel)
        finally:
            await _close(sender)
        try:
            await asyncio.wait_for(heard, wait_s)
        except TimeoutError:
            pooler = (
                f" (port {SUPABASE_TRANSACTION_POOLER_PORT} is Supabase's transaction pooler)"
                if on_supabase_pooler
                else ""
            )
            return failed(
                "listen",
                f"listening through {variable} ({where}) was accepted but a notification from another session "
                f"did not arrive within {wait_s:g} s: a transaction pooler or a proxy sits in "
                f"between{pooler}",
                fix,
            )
    finally:
        with contextlib.suppress(Exception):
            await listener.remove_listener(channel, on_notify)
        await _close(listener)
    return passed("listen", f"a notification from another session arrived through {variable}")


# -- storage, Gemini, Voyage ---------------------------------------------------------------


def check_storage_dir(storage_dir: str) -> Check:
    root = Path(storage_dir).expanduser()
    if not root.is_dir():
        return failed(
            "storage",
            f"STORAGE_DIR {str(root)!r} does not exist or is not a directory",
            "point STORAGE_DIR at the folder that holds the crops",
        )
    if not os.access(root, os.R_OK | os.X_OK):
        return failed(
            "storage",
            f"STORAGE_DIR {str(root)!r} is not readable by this process",
            "grant it read and search permission, or point STORAGE_DIR elsewhere",
        )
    return passed("storage", f"STORAGE_DIR {str(root)!r} is a readable folder")


async def check_storage(settings: Settings) -> Check:
    if settings.storage_dir:
        return await asyncio.to_thread(check_storage_dir, settings.storage_dir)
    assert settings.supabase_url is not None and settings.supabase_service_key is not None
    key = settings.supabase_service_key.get_secret_value()
    headers = {"apikey": key}
    if not key.startswith("sb_secret_"):  # new secret keys are not JWTs and go in apikey only
        headers["Authorization"] = f"Bearer {key}"
    bucket = settings.storage_bucket
    url = f"{settings.supabase_url.rstrip('/')}/storage/v1/bucket/{quote(bucket, safe='')}"
    try:
        async with httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False) as client:
            response = await client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        return failed(
            "storage",
            f"could not reach Supabase Storage at {settings.supabase_url} ({type(exc).__name__})",
            "check SUPABASE_URL (the project URL, e.g. https://<ref>.supabase.co)",
        )
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    inner = str(body.get("statusCode") or "") if isinstance(body, dict) else ""
    if status == 200:
        return passed("storage", f"Supabase Storage accepts the key and bucket {bucket!r} exists")
    if status == 404 or inner == "404":
        return failed(
            "storage",
            f"Supabase Storage has no bucket {bucket!r}",
            "set STORAGE_BUCKET to the bucket that holds the crops (Maestro: project-files)",
        )
    if status in (401, 403) or inner in ("401", "403"):
        return failed(
            "storage",
            f"Supabase Storage refused the key (HTTP {status})",
            "set SUPABASE_SERVICE_KEY to the project's service_role (or sb_secret_) key",
        )
    return failed(
        "storage",
        f"Supabase Storage answered HTTP {status} for bucket {bucket!r}",
        "check SUPABASE_URL and that Storage is up, then run doctor again",
    )


async def check_gemini(settings: Settings) -> Check:
    if settings.enricher_provider != "gemini":
        return passed("gemini", "not used (ENRICHER_PROVIDER=local)")
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

    from pgqueue_enricher.providers.gemini import _is_key_error

    assert settings.gemini_api_key is not None
    model = settings.pass2_model
    async with httpx.AsyncClient(timeout=HTTP_TIMEOUT) as http:
        client = genai.Client(
            api_key=settings.gemini_api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url or None,
                timeout=int(HTTP_TIMEOUT * 1000),
                httpx_async_client=http,
            ),
        )
        try:
            found = await client.aio.models.get(model=model)
        except genai_errors.APIError as exc:
            code = exc.code or 0
            label = f"{code} {exc.status or ''}".strip()
            message = " ".join(str(exc.message or "").split())[:240]
            if code in (401, 403) or (code == 400 and _is_key_error(exc)):
                return failed(
                    "gemini",
                    f"Gemini refused the key ({label}: {message})",
                    "set GEMINI_API_KEY to a key from Google AI Studio whose project has the Gemini API enabled",
                )
            if code == 404:
                return failed(
                    "gemini",
                    f"Gemini does not know PASS2_MODEL {model!r} ({label})",
                    "set PASS2_MODEL to a model id this key can use (e.g. gemini-3.5-flash)",
                )
            return failed(
                "gemini",
                f"Gemini answered {label}: {message}",
                "run doctor again; if it persists, check Gemini's status",
            )
        except (httpx.HTTPError, OSError) as exc:
            return failed(
                "gemini",
                f"could not reach Gemini ({type(exc).__name__})",
                "check the network, and GEMINI_BASE_URL if it is set",
            )
        finally:
            await client.aio.aclose()
    limit = f", {found.input_token_limit:,} input tokens" if found.input_token_limit else ""
    return passed("gemini", f"the key is accepted and PASS2_MODEL {model!r} exists{limit}")


async def check_voyage(settings: Settings) -> Check:
    if settings.enricher_provider != "gemini":
        return passed("voyage", "not used (ENRICHER_PROVIDER=local)")
    from pgqueue_enricher.providers.voyage import VoyageEmbedder

    embedder = VoyageEmbedder(settings.model_copy(update={"pass2_voyage_timeout": HTTP_TIMEOUT}))
    try:
        embedding = await embedder.embed(VOYAGE_PROBE_TEXT)
    except EnrichmentFailure as failure:
        fix = (
            "set VOYAGE_API_KEY to a key from the Voyage AI dashboard"
            if failure.kind == "auth"
            else "check VOYAGE_MODEL and VOYAGE_BASE_URL, then run doctor again"
        )
        return failed("voyage", failure.reason, fix)
    finally:
        await embedder.aclose()
    cost = embedding.total_tokens * settings.pass2_price_voyage / PER_MILLION
    return passed(
        "voyage",
        f"the key is accepted: {settings.voyage_model} embedded {embedding.total_tokens} tokens "
        f"into {len(embedding.vector)} dimensions, cost ${cost:.8f} (PASS2_PRICE_VOYAGE "
        f"${settings.pass2_price_voyage:g} per 1M tokens)",
    )
