"""Database access: connection pool, migrations, TimescaleDB capabilities and batched writes."""
