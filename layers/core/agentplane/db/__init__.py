"""PostgreSQL access: transactions that carry the caller, migrations, the embedded server."""
