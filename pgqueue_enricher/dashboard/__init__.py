"""The operators' web dashboard (optional extra `dashboard`): pages over the queue and admin actions.

`create_app(database_url=..., role=...)` builds the ASGI app; `pgqueue-enricher dashboard`
serves it standalone behind HTTP basic auth.
"""

from pgqueue_enricher.dashboard.app import create_app
from pgqueue_enricher.dashboard.security import basic_auth_role

__all__ = ["basic_auth_role", "create_app"]
