"""Python entry to the SQL function seed_default_experience, for host code.

The SQL function is the implementation (a trigger calls it for every new project); this is
a thin wrapper so host code can seed projects created before the trigger existed. It accepts
what host code has at hand: a SQLAlchemy Session or Connection (returns the count), or an
asyncpg connection or pool, or a SQLAlchemy AsyncSession (returns an awaitable).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable
from typing import Any

from sqlalchemy import text

from pgqueue_enricher.schema.sqlfiles import query


def seed_default_experience(project_id: uuid.UUID | str, db: Any) -> int | Awaitable[int]:
    project = uuid.UUID(str(project_id))
    module = type(db).__module__
    if module.startswith("asyncpg"):
        return _seed_asyncpg(project, db)
    statement = text(query("experience_seed_sqlalchemy"))
    if module.startswith("sqlalchemy.ext.asyncio"):
        return _seed_sqlalchemy_async(project, db, statement)
    return int(db.execute(statement, {"project_id": str(project)}).scalar_one())


async def _seed_asyncpg(project: uuid.UUID, db: Any) -> int:
    return int(await db.fetchval(query("experience_seed"), project))


async def _seed_sqlalchemy_async(project: uuid.UUID, db: Any, statement: Any) -> int:
    result = await db.execute(statement, {"project_id": str(project)})
    return int(result.scalar_one())
