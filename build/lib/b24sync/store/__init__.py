"""PostgreSQL: connection, embedded server, service tables, migrations, bulk loader."""
