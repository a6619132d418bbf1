"""The HTTP API (FastAPI): thin routes over :class:`b24sync.service.SyncService`."""
