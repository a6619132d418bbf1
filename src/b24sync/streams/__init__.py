"""Every Bitrix24 dataset b24sync mirrors, as data (DESIGN.md, "Streams").

The engine, the loader, the API, the CLI, the scheduler, the event router and the dashboard read
this registry; nothing else lists datasets by name.
"""

from b24sync.streams.model import Column, Kind, Stream
from b24sync.streams.registry import (
    EVENT_NAMES,
    STREAMS,
    children_of,
    stream_for_event,
    stream_named,
    streams_of,
)

__all__ = [
    "EVENT_NAMES",
    "STREAMS",
    "Column",
    "Kind",
    "Stream",
    "children_of",
    "stream_for_event",
    "stream_named",
    "streams_of",
]
