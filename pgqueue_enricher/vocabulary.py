"""The values the queue's columns may hold, shared by the SQLAlchemy models and the queue.

A module of its own so that the queue, the worker and every CLI command can name them
without importing SQLAlchemy (the models), whose import would slow the start of every
`status` and `requeue` an operator or a probe runs.
"""

ENRICHMENT_STATUSES = ("pending", "processing", "complete", "failed")
# In claim order: every interactive row before any backfill row (sql/scheduling.sql).
ENRICHMENT_LANES = ("interactive", "backfill")
