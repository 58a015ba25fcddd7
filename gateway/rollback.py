"""What a responder needs to undo a side-effecting call: the ids its response handed back.

A message id, a refund id, a created issue's number: APIs return them in JSON under `id` or a
key ending in `id`. They are collected from the top level and one level down (`{"data": {"id"}}`,
`{"refund": {"id"}}`), which covers the common shapes without walking an arbitrary document.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_IDS = 20
MAX_ID_CHARS = 200


def _is_id_key(key: str) -> bool:
    lowered = key.lower()
    return lowered == "id" or lowered.endswith(("_id", "-id")) or key.endswith("Id")


def result_ids(body: bytes) -> dict[str, str]:
    """`{"refund.id": "re_123", "message_id": "msg_1"}`: id-like scalar fields by path."""
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    found: dict[str, str] = {}
    levels = [("", document)]
    for prefix, value in levels:
        if not isinstance(value, dict):
            continue
        for key, inner in value.items():
            if len(found) == MAX_IDS:
                return found
            path = f"{prefix}{key}"
            if isinstance(inner, str | int) and not isinstance(inner, bool) and _is_id_key(key):
                found[path] = str(inner)[:MAX_ID_CHARS]
            elif isinstance(inner, dict) and not prefix:
                levels.append((f"{path}.", inner))
    return found
