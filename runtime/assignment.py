"""The fleet's desired symbols on Kafka: one compacted record per symbol, and the names of the fleet's topics.

    <prefix>.symbols      key = symbol, value = its desired spec (JSON below), compacted; P partitions.
                          The source of truth of the desired set with the Kafka bus: the dashboard
                          writes it (storage keeps an audited copy), collectors read the partitions
                          the group <prefix>-collectors assigns them and watch those symbols.
    <prefix>.fleet        key = instance id, value = that instance's status (runtime/fleet_status.py).

A value is JSON, because operators read these topics with ordinary Kafka tools::

    {"v": 1, "level1": true, "depth": false, "critical": false, "silent_after_s": 0.0,
     "updated_ns": 1767225600000000000, "updated_by": "anna"}

A stop is a record with ``level1`` false (it keeps who stopped it and when); a tombstone (no value)
also removes the symbol. Decoding is strict: a record this version cannot read is an
:class:`AssignmentRecordError` that callers count and log, never a crash and never a silent watch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from collectors.iqfeed.protocol import InvalidSymbol, validate_symbol
from runtime.symbols import SymbolSpec

SPEC_VERSION = 1


class AssignmentRecordError(ValueError):
    """A record of the assignment topic cannot be read; the message names the key and what is wrong."""


def assignment_topic(prefix: str) -> str:
    return f"{prefix}.symbols"


def collector_group(prefix: str) -> str:
    return f"{prefix}-collectors"


def encode_spec(spec: SymbolSpec) -> bytes:
    return json.dumps({
        "v": SPEC_VERSION, "level1": spec.level1, "depth": spec.depth, "critical": spec.critical,
        "silent_after_s": spec.silent_after_s, "updated_ns": spec.updated_ns, "updated_by": spec.updated_by,
    }, separators=(",", ":")).encode()


def decode_spec(key: str, payload: bytes) -> SymbolSpec:
    """The spec a record carries; raises :class:`AssignmentRecordError` for anything unexpected."""
    try:
        symbol = validate_symbol(key)
    except InvalidSymbol as exc:
        raise AssignmentRecordError(f"record key {key!r} is not a symbol: {exc}") from None
    if symbol != key:  # another spelling hashes to another partition: two owners could watch one symbol
        raise AssignmentRecordError(f"record key {key!r} is not canonical: write it as {symbol!r}")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AssignmentRecordError(f"{symbol}: value is not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("v") != SPEC_VERSION:
        raise AssignmentRecordError(f"{symbol}: value is not a version {SPEC_VERSION} spec: {payload[:80]!r}")
    flags = {name: data.get(name, False) for name in ("level1", "depth", "critical")}
    bad = [name for name, value in flags.items() if not isinstance(value, bool)]
    silent = data.get("silent_after_s", 0.0)
    updated_ns = data.get("updated_ns", 0)
    if bad or not isinstance(silent, int | float) or isinstance(silent, bool) or silent < 0 \
            or not isinstance(updated_ns, int) or isinstance(updated_ns, bool) \
            or not isinstance(data.get("updated_by", ""), str):
        raise AssignmentRecordError(f"{symbol}: malformed spec (booleans level1/depth/critical, silent_after_s >= 0, "
                                    f"integer updated_ns, text updated_by): {payload[:120]!r}")
    return SymbolSpec(symbol, flags["level1"], flags["depth"], float(silent), updated_ns,
                      data.get("updated_by", ""), flags["critical"])


def decode_table(rows: Mapping[str, bytes]) -> tuple[dict[str, SymbolSpec], dict[str, str]]:
    """Specs by symbol from a table of records, and the records that could not be read (key -> why)."""
    specs: dict[str, SymbolSpec] = {}
    errors: dict[str, str] = {}
    for key, payload in rows.items():
        try:
            spec = decode_spec(key, payload)
        except AssignmentRecordError as exc:
            errors[key] = str(exc)
            continue
        specs[spec.symbol] = spec
    return specs, errors
