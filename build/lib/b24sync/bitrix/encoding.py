"""PHP-style query strings for batch commands: {"filter": {">ID": 5}} -> filter[>ID]=5."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote


def _pairs(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _pairs(f"{prefix}[{key}]", item)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _pairs(f"{prefix}[{index}]", item)
    elif isinstance(value, bool):
        yield prefix, "Y" if value else "N"
    elif value is None:
        yield prefix, ""
    else:
        yield prefix, str(value)


def encode_params(params: Mapping[str, Any]) -> str:
    """Encode for a batch command; `$result[...]` references are kept readable."""
    parts = []
    for key, value in params.items():
        for name, text in _pairs(str(key), value):
            parts.append(f"{quote(name, safe='[]')}={quote(text, safe='$[]')}")
    return "&".join(parts)
