"""Every Bitrix24 dataset b24sync mirrors, as data (DESIGN.md, "Streams").

The engine, the loader, the API, the CLI, the scheduler, the event router and the dashboard read
this registry; nothing else lists datasets by name.
"""

from b24sync.streams.kinds import smart_process_streams
from b24sync.streams.model import Column, Kind, SmartProcess, Stream
from b24sync.streams.registry import (
    EVENT_NAMES,
    ITEM_NAME_PATTERN,
    STREAMS,
    StreamRegistry,
    children_of,
    event_target,
    history_of,
    is_stream_name,
    stream_named,
    stream_or_item,
    streams_of,
)

__all__ = [
    "EVENT_NAMES",
    "ITEM_NAME_PATTERN",
    "STREAMS",
    "Column",
    "Kind",
    "SmartProcess",
    "Stream",
    "StreamRegistry",
    "children_of",
    "event_target",
    "history_of",
    "is_stream_name",
    "smart_process_streams",
    "stream_named",
    "stream_or_item",
    "streams_of",
]
