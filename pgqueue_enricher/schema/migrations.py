"""Running Alembic from code: `pgqueue-enricher migrate`, the demo and the tests.

Each revision applies its own frozen file in sql/migrations/, so a released revision never
changes when the living definitions in sql/definitions/ do. A revision file is a three-line
stub: `revision_script` derives everything else from its name. The Alembic scripts ship
inside the package (`pgqueue_enricher/_alembic`), so an installed wheel migrates with no
checkout around it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import PurePath

import psycopg
from alembic.config import Config
from sqlalchemy import create_engine, inspect, pool, text
from sqlalchemy.exc import DBAPIError

from alembic import command, op
from pgqueue_enricher.schema.sqlfiles import migration_sql
from pgqueue_enricher.settings import ConfigError, plain_dsn

VERSION_TABLE = "pgqueue_enricher_alembic_version"

# The current definitions of every function and trigger, one file per topic, in the order
# they apply. A change to one of them ships as a new revision with its own frozen copy; the
# replay test fails when a living file and the head of the migration chain disagree.
LIVING_SQL_FILES = (
    "definitions/doorbell.sql",
    "definitions/experience.sql",
    "definitions/requeue.sql",
    "definitions/admission.sql",
    "definitions/scheduling.sql",
    "definitions/cross_references.sql",
)

# The chain: revision file NNNN_topic.py is the NNNN-th revision applied and runs
# sql/migrations/NNNN_topic.sql. The first twelve were released while files were named by id,
# not by place, and their ids are stored in every migrated database's version table, so they
# keep them: the file numbered n has id RELEASED_IDS[n - 1]. From 0013 on, id == file number.
RELEASED_IDS = (
    "0001",
    "0002",
    "0003",
    "0004",
    "0005",
    "0006",
    "0009",
    "0008",
    "0010",
    "0007",
    "0011",
    "0012",
)

# Revisions that first load the session-local helpers for adopting what a host app already made.
ADOPTING = frozenset({"0002", "0005"})


def revision_id(number: int) -> str:
    """The id of the revision whose file is numbered `number` (its place in the chain)."""
    return RELEASED_IDS[number - 1] if number <= len(RELEASED_IDS) else f"{number:04d}"


def revision_script(path: str) -> tuple[str, str | None, Callable[[], None], Callable[[], None]]:
    """What the revision file at `path` gives Alembic: its id, its parent's id, upgrade, downgrade.

    All of it follows from the name `NNNN_topic.py`, so a stub cannot disagree with its place
    in the chain or apply another revision's SQL.
    """
    stem = PurePath(path).stem
    number = int(stem.split("_", 1)[0])
    revision = revision_id(number)
    sql_file = f"migrations/{stem}.sql"
    first = ("migrations/adoption_helpers.sql",) if revision in ADOPTING else ()

    def upgrade() -> None:
        for relative_path in (*first, sql_file):
            apply_sql(relative_path, "upgrade")

    def downgrade() -> None:
        apply_sql(sql_file, "downgrade")

    return revision, revision_id(number - 1) if number > 1 else None, upgrade, downgrade


def apply_sql(relative_path: str, direction: str) -> None:
    """Run one block of a sql/ file inside the current migration (or print it offline)."""
    sql = migration_sql(relative_path, direction)
    if op.get_context().as_sql:
        # Offline (`migrate --sql`): print the block verbatim, terminated like Alembic's own output.
        op.get_context().impl.static_output(sql.rstrip() + "\n")
    else:
        # Driver level, with no parameters: `%` in the SQL must reach Postgres untouched.
        # SQLAlchemy always hands the driver a parameter container, which makes psycopg parse
        # placeholders; the raw cursor with no parameters sends the text as it is.
        with op.get_bind().connection.dbapi_connection.cursor() as cursor:
            cursor.execute(sql)


def sqlalchemy_url(database_url: str | None) -> str:
    if database_url is None:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            raise ConfigError("DATABASE_URL is not set: point it at the Postgres database to migrate")
    return "postgresql+psycopg://" + plain_dsn(database_url).split("://", 1)[1]


def alembic_config(database_url: str | None = None, stdout: io.TextIOBase | None = None) -> Config:
    # No alembic.ini: everything Alembic needs is set here, so nothing is read from the
    # working directory or a source tree.
    config = Config(stdout=stdout or sys.stdout)
    config.set_main_option("script_location", str(resources.files("pgqueue_enricher") / "_alembic"))
    if database_url is not None:
        config.attributes["database_url"] = sqlalchemy_url(database_url)
    return config


def head_revision() -> str:
    """The newest revision this installation ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(None)).get_current_head()
    assert head is not None
    return head


def behind_head(revision: str | None) -> bool:
    """Whether a database at `revision` (None: never migrated) lacks revisions this installation
    ships. A revision this installation does not know is a newer package's: not behind."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(None))
    known = {item.revision for item in script.walk_revisions()}
    return revision is None or (revision in known and revision != script.get_current_head())


# The id columns every statement of this project compares as uuid: projects → disciplines →
# pages → pointers, and the keys that join them.
ID_COLUMNS = (
    ("projects", "id"),
    ("disciplines", "id"),
    ("disciplines", "project_id"),
    ("pages", "id"),
    ("pages", "discipline_id"),
    ("pointers", "id"),
    ("pointers", "page_id"),
)


class MigrationError(Exception):
    """A migration could not run on this database; the message says why in one sentence."""


def check_id_types(database_url: str) -> None:
    """Refuse, before anything changes, a host schema whose ids are not uuid.

    Maestro's local-development schema keeps ids as varchar(36). Supporting text ids would
    mean a cast on every claim, heartbeat and release (and no index on the cast); refusing
    up front leaves the database exactly as it was instead of failing half-way.
    """
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            for table, column in ID_COLUMNS:
                row = conn.execute(
                    text(
                        "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
                        "WHERE a.attrelid = to_regclass(:table) AND a.attname = :column AND NOT a.attisdropped"
                    ),
                    {"table": table, "column": column},
                ).scalar()
                if row is not None and row != "uuid":
                    raise ConfigError(
                        f"{table}.{column} is {row}, but pgqueue-enricher needs uuid ids "
                        "(Maestro's production schema); nothing was changed: convert those ids to "
                        "uuid or point DATABASE_URL at a database with uuid ids"
                    )
    finally:
        engine.dispose()


def database_error_line(exc: BaseException) -> str:
    """The first line of what the database (or driver) said, for a one-sentence report."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else type(cause).__name__


def upgrade(database_url: str, revision: str = "head") -> None:
    check_id_types(database_url)
    try:
        command.upgrade(alembic_config(database_url), revision)
    except (DBAPIError, psycopg.Error) as exc:
        # Each revision runs in its own transaction: the failing one left nothing behind.
        reached = current_revision(database_url) or "base"
        cause = getattr(exc, "orig", None) or exc
        raise MigrationError(
            f"a migration step failed on this database and was rolled back ({type(cause).__name__}: "
            f"{database_error_line(exc)}); the schema stays at revision {reached}"
        ) from exc


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def upgrade_sql(revision: str = "head") -> str:
    """The SQL `migrate` would run, printed without connecting anywhere."""
    buffer = io.StringIO()
    config = alembic_config(None, stdout=buffer)
    config.output_buffer = buffer
    command.upgrade(config, revision, sql=True)
    return buffer.getvalue()


def current_revision(database_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(database_url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()  # noqa: S608
    finally:
        engine.dispose()
