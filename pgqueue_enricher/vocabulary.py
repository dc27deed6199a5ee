"""The values the queue's columns may hold, shared by the SQLAlchemy models and the queue.

A module of its own so that the queue, the worker and every CLI command can name them
without importing SQLAlchemy (the models): that import alone cost each CLI process about
0.4 s of start-up, paid by every `status` and `requeue` an operator or a probe runs.
"""

ENRICHMENT_STATUSES = ("pending", "processing", "complete", "failed")
# In claim order: every interactive row before any backfill row (sql/definitions/scheduling.sql).
ENRICHMENT_LANES = ("interactive", "backfill")
