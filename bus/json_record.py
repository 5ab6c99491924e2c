"""Versioned JSON rows of the fleet's compacted topics (collector and writer statuses, consistency digests).

Any Kafka tool can read them; a row of another version or not JSON at all is refused with an error
that names the row, so the reader counts and logs it instead of acting on a guess.
"""

from __future__ import annotations

import json
from typing import Any


def dump_record(version: int, fields: dict[str, Any]) -> bytes:
    return json.dumps({"v": version, **fields}, separators=(",", ":")).encode()


def load_record(payload: bytes, version: int, *, what: str, kind: str, error: type[ValueError]) -> dict[str, Any]:
    """The fields of a ``version`` row (without ``v``); raises ``error`` naming ``what`` (e.g. "status of 'c1'")."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{what} is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.pop("v", None) != version:
        raise error(f"{what} is not a version {version} {kind}: {payload[:80]!r}")
    return data
