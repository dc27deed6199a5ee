"""Alembic environment: online upgrades through psycopg, offline (`migrate --sql`) prints SQL."""

from __future__ import annotations

from sqlalchemy import create_engine, pool

from alembic import context
from pgqueue_enricher.models import Base
from pgqueue_enricher.schema.migrations import VERSION_TABLE, sqlalchemy_url

config = context.config
target_metadata = Base.metadata


def url() -> str:
    return config.attributes.get("database_url") or sqlalchemy_url(None)


def run_offline() -> None:
    context.configure(
        url=url() if config.attributes.get("database_url") else "postgresql+psycopg://",
        literal_binds=True,
        version_table=VERSION_TABLE,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, version_table=VERSION_TABLE, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url(), poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, version_table=VERSION_TABLE, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
