"""PostgreSQL access: transactions that carry the caller, migrations, the embedded server."""

from agentplane.db.database import Database

__all__ = ["Database"]
