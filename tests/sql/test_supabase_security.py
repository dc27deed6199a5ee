"""Migrated into a Supabase-like role layout, nothing of the project is open to the Data API.

The embedded server gets Supabase's roles (anon, authenticated, service_role) and an owner
like Supabase's `postgres`: not a superuser, owner of schema public, with the historical
default privileges that grant anon and authenticated everything it creates, and `vector`
installed into schema `extensions` by the superuser (pgvector is not a trusted extension, so
the owner could not create it). Roles are cluster-wide: this module creates the ones that do
not exist yet and drops them again, so every other test still sees a plain Postgres.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

from pgqueue_enricher.demo import embedded_postgres as database
from pgqueue_enricher.schema import migrations
from pgqueue_enricher.settings import Settings
from tests.conftest import admin_execute
from tests.fakes.server import FakeServer
from tests.support.harness import RowWatcher, running_worker, worker_settings
from tests.support.helpers import insert_pointers, make_page

# The revision this module is about, and the one before it in the chain (a database "migrated
# before this change").
SECURITY_REVISION = "0006"
PREVIOUS = (
    ScriptDirectory.from_config(migrations.alembic_config()).get_revision(SECURITY_REVISION).down_revision
)
DATA_API_ROLES = ("anon", "authenticated")
OWNER = "pgqe_supabase_owner"
PROJECT_TABLES = (
    "public.experience_files",
    "public.sessions",
    "public.pgqueue_enricher_alembic_version",
    "public.pgqueue_enricher_security_undo",
    "public.pgqueue_enricher_provider_state",  # revision 0007
    "public.pointer_cross_reference_links",  # revision 0013 (a view)
    "public.pgqueue_enricher_embedding_switch",  # revision 0015
    "public.pgqueue_enricher_embedding_shadow",
)
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
FUNCTIONS = (
    "public.pointers_ring_doorbell_on_insert()",
    "public.pointers_ring_doorbell_on_update()",
    "public.seed_default_experience(uuid)",
    "public.projects_seed_experience()",
    "public.requeue_failed_pointers(uuid, uuid[], text)",
    "public.pgqueue_enricher_resume_provider(text)",  # revision 0007
    # revision 0013
    "public.pgqueue_enricher_permit(text, double precision, double precision, double precision,"
    " double precision, double precision, text, double precision)",
    "public.pointers_schedule()",  # revision 0008
    "public.requeue_pointers_to_lane(text, uuid, uuid[], boolean)",
    # revision 0014
    "public.normalise_sheet_id(text)",
    "public.pointer_title_detail(text)",
    "public.parse_cross_reference(text)",
)
SQL_API = (
    "public.seed_default_experience(uuid)",
    "public.requeue_failed_pointers(uuid, uuid[], text)",
    "public.requeue_pointers_to_lane(text, uuid, uuid[], boolean)",
)
FIVE_FILES = {"routing_rules.md", "corrections.md", "preferences.md", "schedule.md", "gaps.md"}


@dataclass(frozen=True)
class SupabaseDb:
    owner_url: str  # the owner, as the daemon and `migrate` connect on Supabase
    admin_url: str  # the superuser (Supabase's supabase_admin), for checks and SET ROLE


def fetch(url: str, sql: str, *params: object) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def as_user(url: str, user: str, password: str, name: str) -> str:
    parsed = make_url(url).set(username=user, password=password, database=name)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def owner_password(pg_server: database.DatabaseHandle, template_url: str) -> Iterator[str]:
    """Supabase's roles for this module. Depends on the template so that it is migrated
    before the roles exist (it stays a plain-Postgres template for the other tests)."""
    password = secrets.token_hex(16)
    wanted = {
        "anon": "NOLOGIN",
        "authenticated": "NOLOGIN",
        "service_role": "NOLOGIN BYPASSRLS",
        OWNER: "LOGIN NOSUPERUSER CREATEROLE BYPASSRLS",
    }
    existing = {row[0] for row in fetch(pg_server.url, "SELECT rolname FROM pg_roles")}
    created = [role for role in wanted if role not in existing]
    for role in created:
        admin_execute(pg_server.url, f"CREATE ROLE {role} {wanted[role]}")
    admin_execute(
        pg_server.url,
        f"ALTER ROLE {OWNER} PASSWORD '{password}'",
        f'ALTER ROLE {OWNER} SET search_path = "$user", public, extensions',
    )
    try:
        yield password
    finally:
        # The databases that held privileges of these roles are dropped by now.
        for role in reversed(created):
            admin_execute(pg_server.url, f"DROP ROLE {role}")


@pytest.fixture
def supabase_db(pg_server: database.DatabaseHandle, owner_password: str) -> Iterator[SupabaseDb]:
    """A fresh database laid out like a Supabase project, not migrated yet."""
    name = f"pgqe_supabase_{uuid.uuid4().hex[:12]}"
    admin_execute(pg_server.url, f"CREATE DATABASE {name} OWNER {OWNER}")
    admin_url = database.with_database_name(pg_server.url, name)
    owner_url = as_user(pg_server.url, OWNER, owner_password, name)
    try:
        admin_execute(
            admin_url,
            f"ALTER SCHEMA public OWNER TO {OWNER}",
            "GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role",
            "CREATE SCHEMA extensions",
            f"GRANT USAGE ON SCHEMA extensions TO {OWNER}, anon, authenticated, service_role",
            "CREATE EXTENSION vector WITH SCHEMA extensions",
        )
        # Supabase's "GRANT ALL ON TABLES, FUNCTIONS, SEQUENCES", one kind per statement.
        admin_execute(
            owner_url,
            *(
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public "
                f"GRANT ALL ON {kind} TO anon, authenticated, service_role"
                for kind in ("TABLES", "FUNCTIONS", "SEQUENCES")
            ),
        )
        yield SupabaseDb(owner_url=owner_url, admin_url=admin_url)
    finally:
        admin_execute(pg_server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def migrated(supabase_db: SupabaseDb) -> SupabaseDb:
    migrations.upgrade(supabase_db.owner_url)
    return supabase_db


def data_api_privileges(url: str) -> list[tuple[str, str, str]]:
    """Every (role, object, privilege) anon or authenticated holds on the project's objects."""
    held = []
    tables = [table for table in PROJECT_TABLES if fetch(url, "SELECT to_regclass(%s)", table)[0][0]]
    # Functions of later revisions are absent from a database migrated to an earlier one.
    functions = [f for f in FUNCTIONS if fetch(url, "SELECT to_regprocedure(%s)", f)[0][0]]
    for role in DATA_API_ROLES:
        for table in tables:
            for privilege in TABLE_PRIVILEGES:
                if fetch(url, "SELECT has_table_privilege(%s, %s, %s)", role, table, privilege)[0][0]:
                    held.append((role, table, privilege))
        for function in functions:
            if fetch(url, "SELECT has_function_privilege(%s, %s, 'EXECUTE')", role, function)[0][0]:
                held.append((role, function, "EXECUTE"))
    return held


def row_level_security(url: str) -> dict[str, bool]:
    rows = fetch(
        url,
        "SELECT relname, relrowsecurity FROM pg_class "
        "WHERE oid IN ('public.experience_files'::regclass, 'public.sessions'::regclass)",
    )
    return dict(rows)


def assert_locked_down(db: SupabaseDb) -> None:
    assert row_level_security(db.admin_url) == {"experience_files": True, "sessions": True}
    assert data_api_privileges(db.admin_url) == []
    for function in SQL_API:
        assert fetch(
            db.admin_url, "SELECT has_function_privilege('service_role', %s, 'EXECUTE')", function
        ) == [(True,)]
    # The host's tables are the host's decision: the default privileges still apply to them,
    # which also shows that this layout really grants the Data API roles everything.
    assert fetch(db.admin_url, "SELECT has_table_privilege('anon', 'public.pointers', 'INSERT')") == [(True,)]


def test_the_data_api_roles_hold_no_privilege_on_the_projects_tables_and_functions(
    migrated: SupabaseDb,
) -> None:
    assert_locked_down(migrated)
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute("SET ROLE anon")
        for statement in (
            "SELECT * FROM public.sessions",
            "UPDATE public.experience_files SET content = ''",
            "DELETE FROM public.pgqueue_enricher_alembic_version",
            "SELECT public.requeue_failed_pointers()",
            "SELECT public.seed_default_experience(gen_random_uuid())",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM public.pointers").fetchone() == (0,)


def test_every_function_pins_an_empty_search_path_and_only_the_seeding_trigger_runs_as_its_owner(
    migrated: SupabaseDb,
) -> None:
    rows = fetch(
        migrated.admin_url,
        """SELECT p.proname, p.proconfig, p.prosecdef FROM pg_proc p
           WHERE p.pronamespace = 'public'::regnamespace
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    )
    functions = {name: (config, definer) for name, config, definer in rows}
    assert {name.removeprefix("public.").split("(")[0] for name in FUNCTIONS} <= set(functions)
    assert {name: config for name, (config, _) in functions.items() if config != ['search_path=""']} == {}
    assert {name for name, (_, definer) in functions.items() if definer} == {"projects_seed_experience"}


def test_a_project_inserted_from_an_empty_search_path_gets_its_five_files(migrated: SupabaseDb) -> None:
    with psycopg.connect(migrated.owner_url, autocommit=True) as conn:
        conn.execute("SET search_path = ''")
        project = conn.execute("INSERT INTO public.projects (user_id, name) VALUES ('u', 'p') RETURNING id")
        project_id = project.fetchone()[0]
        files = conn.execute("SELECT path FROM public.experience_files WHERE project_id = %s", (project_id,))
        assert {row[0] for row in files} == FIVE_FILES
        assert conn.execute("SELECT public.seed_default_experience(%s)", (project_id,)).fetchone() == (0,)


def test_a_role_that_may_insert_projects_but_not_experience_files_still_gets_them_seeded(
    migrated: SupabaseDb,
) -> None:
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute("SET ROLE authenticated")
        conn.execute("SET search_path = ''")
        project_id = conn.execute(
            "INSERT INTO public.projects (user_id, name) VALUES ('u', 'p') RETURNING id"
        ).fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.experience_files")
    count = fetch(
        migrated.admin_url, "SELECT count(*) FROM experience_files WHERE project_id = %s", project_id
    )
    assert count == [(5,)]


async def test_the_worker_claims_and_completes_as_the_owner(
    migrated: SupabaseDb, provider_settings: Settings, crops: FakeServer
) -> None:
    conn = await asyncpg.connect(migrated.owner_url)
    try:
        watcher = await RowWatcher(conn).install()
        _, page = await make_page(conn)
        [pointer] = await insert_pointers(conn, page, 1)
        async with running_worker(worker_settings(provider_settings, migrated.owner_url)):
            assert await watcher.until_final(1, timeout=15) == {str(pointer): "complete"}
        row = await conn.fetchrow("SELECT description, embedding FROM pointers WHERE id = $1", pointer)
        assert "## Description" in row["description"] and row["embedding"] is not None
        await conn.execute("UPDATE pointers SET enrichment_status = 'failed' WHERE id = $1", pointer)
        assert await conn.fetchval("SELECT public.requeue_failed_pointers()") == 1
    finally:
        await conn.close()
    assert crops.gemini.calls == 1


def test_a_database_migrated_before_this_revision_is_fixed_by_the_upgrade(supabase_db: SupabaseDb) -> None:
    migrations.upgrade(supabase_db.owner_url, PREVIOUS)
    before = set(data_api_privileges(supabase_db.admin_url))
    assert ("anon", "public.sessions", "SELECT") in before
    assert ("anon", "public.pgqueue_enricher_alembic_version", "DELETE") in before
    assert ("anon", "public.requeue_failed_pointers(uuid, uuid[], text)", "EXECUTE") in before
    migrations.upgrade(supabase_db.owner_url)
    assert migrations.current_revision(supabase_db.owner_url) == migrations.head_revision()
    assert_locked_down(supabase_db)


def privilege_state(url: str) -> dict[str, object]:
    """Who holds what on the objects 0006 touches (as sets: a re-grant may reorder an ACL),
    which tables have row level security, and the foreign-key indexes."""
    acls = fetch(
        url,
        """SELECT c.oid::regclass::text, a.grantee::regrole::text, a.privilege_type, a.is_grantable
           FROM pg_class c, aclexplode(COALESCE(c.relacl, acldefault('r', c.relowner))) a
           WHERE c.oid IN ('experience_files'::regclass, 'sessions'::regclass,
                           'pgqueue_enricher_alembic_version'::regclass)
           UNION ALL
           SELECT p.oid::regprocedure::text, a.grantee::regrole::text, a.privilege_type, a.is_grantable
           FROM pg_proc p, aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a
           WHERE p.pronamespace = 'public'::regnamespace""",
    )
    indexes = fetch(
        url, "SELECT indexname FROM pg_indexes WHERE tablename IN ('disciplines', 'pages', 'pointers')"
    )
    return {
        "acl": set(acls),
        "rls": row_level_security(url),
        "indexes": {row[0] for row in indexes},
    }


def test_downgrade_gives_back_exactly_the_grants_the_upgrade_took_and_takes_back_what_it_gave(
    supabase_db: SupabaseDb,
) -> None:
    migrations.upgrade(supabase_db.owner_url, PREVIOUS)
    # A host that had already closed part of it: authenticated keeps nothing on sessions,
    # sessions has row level security, service_role may not requeue, and pointers has an
    # index of its own that leads with page_id.
    admin_execute(
        supabase_db.owner_url,
        "REVOKE ALL ON sessions FROM authenticated",
        "ALTER TABLE sessions ENABLE ROW LEVEL SECURITY",
        "REVOKE EXECUTE ON FUNCTION requeue_failed_pointers(uuid, uuid[], text) FROM service_role",
        "CREATE INDEX host_pointers_page ON pointers (page_id, created_at)",
    )
    before = privilege_state(supabase_db.admin_url)
    migrations.upgrade(supabase_db.owner_url, "0006")  # this revision alone
    upgraded = privilege_state(supabase_db.admin_url)
    assert upgraded["indexes"] - before["indexes"] == {
        "idx_disciplines_project_id",
        "idx_pages_discipline_id",
    }
    assert ("requeue_failed_pointers(uuid,uuid[],text)", "service_role", "EXECUTE", False) in upgraded["acl"]
    migrations.downgrade(supabase_db.owner_url, PREVIOUS)
    assert privilege_state(supabase_db.admin_url) == before
    assert fetch(supabase_db.admin_url, "SELECT to_regclass('pgqueue_enricher_security_undo')") == [(None,)]
    proconfig = fetch(
        supabase_db.admin_url, "SELECT proconfig FROM pg_proc WHERE proname = 'requeue_failed_pointers'"
    )
    assert proconfig == [(None,)]
    # And up again: the same locked-down state as a fresh install.
    migrations.upgrade(supabase_db.owner_url)
    assert_locked_down(supabase_db)


def test_on_plain_postgres_no_role_statement_runs_and_public_keeps_execute(db_url: str) -> None:
    # db_url is cloned from the template, migrated before this module created any role.
    undo = fetch(db_url, "SELECT object_type, undo, grantee FROM pgqueue_enricher_security_undo")
    assert sorted(undo) == [("TABLE", "disable_rls", None)] * 2
    assert row_level_security(db_url) == {"experience_files": True, "sessions": True}
    public_execute = fetch(
        db_url,
        """SELECT p.proname FROM pg_proc p, aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner))) a
           WHERE p.pronamespace = 'public'::regnamespace AND a.grantee = 0
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    )
    # An operator role of a plain-Postgres host may still requeue (tests/e2e/test_secrets.py has one).
    assert {row[0] for row in public_execute} == {
        name.removeprefix("public.").split("(")[0] for name in FUNCTIONS
    }


@pytest.mark.parametrize(
    ("search_path", "preinstalled", "expected"),
    [
        ('"$user", public, extensions', False, "extensions"),
        ('"$user", public', False, "public"),
        ('"$user", public, extensions', True, "public"),
    ],
    ids=["fresh-install-with-extensions", "extensions-not-on-search-path", "existing-vector-stays"],
)
def test_a_fresh_vector_goes_into_schema_extensions_when_the_search_path_has_it(
    pg_server: database.DatabaseHandle, empty_db_url: str, search_path: str, preinstalled: bool, expected: str
) -> None:
    name = make_url(empty_db_url).database
    admin_execute(
        empty_db_url, "CREATE SCHEMA extensions", f"ALTER DATABASE {name} SET search_path = {search_path}"
    )
    if preinstalled:
        admin_execute(empty_db_url, "CREATE EXTENSION vector WITH SCHEMA public")
    migrations.upgrade(empty_db_url)
    assert fetch(
        empty_db_url, "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'vector'"
    ) == [(expected,)]
    embedding = fetch(
        empty_db_url,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = 'pointers'::regclass AND attname = 'embedding'",
    )
    assert embedding == [("vector(1024)",)]


def readme_lockdown_sql() -> str:
    page = (Path(__file__).resolve().parents[2] / "docs" / "supabase.md").read_text(encoding="utf-8")
    section = page.split("### Locking down the host's own tables", 1)[1]
    return section.split("```sql\n", 1)[1].split("```", 1)[0]


def test_the_readmes_lockdown_sql_leaves_the_data_api_roles_nothing_on_the_hosts_tables(
    migrated: SupabaseDb,
) -> None:
    # The docs name Supabase's owner, postgres; here the owner has its own name.
    sql = readme_lockdown_sql()
    assert "FOR ROLE postgres " in sql
    admin_execute(migrated.owner_url, sql.replace("FOR ROLE postgres ", f"FOR ROLE {OWNER} "))
    with psycopg.connect(migrated.admin_url, autocommit=True) as conn:
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO public.pointers (title, png_path) VALUES ('x', 'other-project/plan.png')"
            )
    for role in DATA_API_ROLES:
        for table in ("projects", "disciplines", "pages", "pointers"):
            held = fetch(
                migrated.admin_url,
                "SELECT relrowsecurity, has_table_privilege(%s, oid, 'SELECT') FROM pg_class WHERE oid = %s::regclass",
                role,
                f"public.{table}",
            )
            assert held == [(True, False)], (role, table)
    # A table the owner creates afterwards no longer gets the historical grants.
    admin_execute(migrated.owner_url, "CREATE TABLE public.host_later (id int)")
    assert fetch(migrated.admin_url, "SELECT has_table_privilege('anon', 'public.host_later', 'SELECT')") == [
        (False,)
    ]
