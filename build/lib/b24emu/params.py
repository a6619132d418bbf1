"""PHP-style request parameters: `filter[>ID]=5&select[]=ID` <-> nested dicts and lists.

Bitrix24 is a PHP application, so form-encoded bodies and batch command query strings follow
PHP's `$_REQUEST` rules (docs: settings/how-to-call-rest-api/data-encoding.md).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[]+)((?:\[[^\]]*\])*)$")
_PART = re.compile(r"\[([^\]]*)\]")


def parse_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Fold ``key[a][]=v`` pairs into nested dicts; dicts with keys 0..n become lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            root[key] = value
            continue
        path = [match.group(1), *_PART.findall(match.group(2))]
        node: dict[str, Any] = root
        for depth, part in enumerate(path):
            last = depth == len(path) - 1
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        keys = list(converted)
        if (
            keys
            and all(k.isdigit() for k in keys)
            and sorted(int(k) for k in keys) == list(range(len(keys)))
        ):
            return [converted[str(i)] for i in range(len(keys))]
        return converted
    return node


def parse_query(query: str) -> dict[str, Any]:
    return parse_pairs(parse_qsl(query, keep_blank_values=True))
