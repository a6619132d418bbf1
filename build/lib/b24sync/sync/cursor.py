"""The incremental cursor: a value object stored with the sync state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

DEFAULT_OVERLAP_SECONDS = 120


@dataclass(frozen=True)
class Cursor:
    """Records with ``field >= value - overlap`` are read again.

    ``value`` is the portal's own clock (``time.date_start`` of the run's first response), so
    the client's clock skew cannot lose edits; the overlap covers same-second edits and
    requests that were in flight when the previous run started.
    """

    field: str
    value: datetime
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS

    def filter(self) -> dict[str, str]:
        since = self.value - timedelta(seconds=self.overlap_seconds)
        return {f">={self.field}": since.isoformat()}

    def to_json(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "value": self.value.isoformat(),
            "overlap_seconds": self.overlap_seconds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Cursor | None:
        if not data:
            return None
        return cls(
            str(data["field"]),
            datetime.fromisoformat(str(data["value"])),
            int(data.get("overlap_seconds", DEFAULT_OVERLAP_SECONDS)),
        )
