"""Use cases: syncs, event intake, the local application's installation, test data."""

from b24sync.service.core import TASK_APPLY_EVENTS, TASK_SYNC, SyncService

__all__ = ["TASK_APPLY_EVENTS", "TASK_SYNC", "SyncService"]
