"""The sync engine: full, incremental, by-ids and reconcile runs for any entity."""
