"""The claim's plans on a large, mostly complete table (300,000 complete rows, 30,000 pending).

Both tests read one table, built once per session by the `large_queue_url` fixture; they
share a module so that `make test`'s `--dist loadfile` runs them in one worker, which builds
it once.
"""

from __future__ import annotations

import asyncpg
import pytest

from pgqueue_enricher.queue import statements
from pgqueue_enricher.schema.sqlfiles import query


@pytest.mark.slow
async def test_claim_plan_uses_the_partial_index_on_a_mostly_complete_table(
    large_queue: asyncpg.Connection,
) -> None:
    # 300,000 complete rows beside 30,000 pending ones: a mostly complete table.
    # Plain EXPLAIN plans the claim without running it: nothing is claimed.
    plan = "\n".join(
        r[0] for r in await large_queue.fetch("EXPLAIN " + query("pointers_claim"), 3, "w", 60.0)
    )
    assert "idx_pointers_enrichment_turn" in plan, plan
    assert "Seq Scan on pointers" not in plan, plan


@pytest.mark.slow
async def test_the_fair_claim_reads_indexes_only_on_a_large_mostly_complete_table(
    large_queue: asyncpg.Connection,
) -> None:
    conn = large_queue
    for limit in (1, 4, 32):
        # EXPLAIN without ANALYZE plans the claim without running it: nothing is claimed.
        plan = "\n".join(
            r[0] for r in await conn.fetch("EXPLAIN " + query("pointers_claim"), limit, "w", 60.0)
        )
        assert "Seq Scan on pointers" not in plan, plan
        assert plan.count("idx_pointers_enrichment_turn") == 2, plan
    # And one real claim takes the interactive lane's first turn, spread over projects; it is
    # rolled back, because the table is shared by the session's plan tests.
    transaction = conn.transaction()
    await transaction.start()
    try:
        claimed = await statements.claim(conn, 8, "w", 60)
        assert {p.lane for p in claimed} == {"interactive"}
        projects = await conn.fetchval(
            "SELECT count(DISTINCT enrichment_project_id) FROM pointers WHERE enrichment_status = 'processing'"
        )
        assert projects == 8
    finally:
        await transaction.rollback()
