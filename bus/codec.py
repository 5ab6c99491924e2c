"""Event(s) <-> bus payload: msgspec msgpack behind a one-byte format version.

Two formats share the events' schema (:data:`events.SCHEMA_VERSION`, the Struct fields):

- ``0x01`` + msgpack of one tagged event (:func:`encode`): one event per message, how every
  payload was written until 2026-11-30 and how single events (dead letters, tests, tools) still are;
- ``0x02`` + msgpack array of tagged events (:func:`encode_batch`): several events of one bus
  partition in one message, in the order they were received; an event's place in the array is its
  ``index`` within the message. Kafka's per-message costs (a ``produce`` call, a delivery report, a
  consumed message) are paid once per batch instead of once per event.

Readers accept both (:func:`decode_many`), so topics holding messages of either kind read the same. The
leading byte tells "a future producer wrote this" (:class:`UnsupportedVersion`) from "this is garbage"
(:class:`CodecError`); either goes to the dead-letter topic instead of crashing or blocking a partition.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from events import SCHEMA_VERSION, Event

BATCH_VERSION = 2
SUPPORTED_VERSIONS: frozenset[int] = frozenset({SCHEMA_VERSION, BATCH_VERSION})
_HEADER = bytes([SCHEMA_VERSION])
_BATCH_HEADER = bytes([BATCH_VERSION])
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)
_batch_decoder = msgspec.msgpack.Decoder(list[Event])


class CodecError(ValueError):
    """A bus payload is not a decodable event; the message goes to the dead-letter topic."""


class UnsupportedVersion(CodecError):
    """The payload carries a format version this build does not read (upgrade the consumer)."""


def encode(event: Event) -> bytes:
    """Version byte + msgpack of the tagged event."""
    return _HEADER + _encoder.encode(event)


def encode_batch(events: Sequence[Event]) -> bytes:
    """Batch version byte + msgpack array of the tagged events (at least one)."""
    return _BATCH_HEADER + _encoder.encode(events)


def _version(payload: bytes | None) -> int:
    if not payload:
        raise CodecError("empty payload (tombstone or truncated message)")
    version = payload[0]
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"format version {version} is not supported (this build reads {sorted(SUPPORTED_VERSIONS)})"
        )
    return version


def decode(payload: bytes | None) -> Event:
    """The one event in a single-event ``payload``; raises :class:`CodecError` naming what is wrong with it."""
    version = _version(payload)
    if version == BATCH_VERSION:
        raise CodecError("a batch payload where one event was expected (read it with decode_many)")
    try:
        return _decoder.decode(memoryview(payload)[1:])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CodecError(f"format version {version} payload does not decode as an event: {exc}") from exc


def decode_many(payload: bytes | None) -> list[Event]:
    """The events of a payload of either format, in message order; raises :class:`CodecError`."""
    version = _version(payload)
    try:
        if version == SCHEMA_VERSION:
            return [_decoder.decode(memoryview(payload)[1:])]
        events = _batch_decoder.decode(memoryview(payload)[1:])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CodecError(f"format version {version} payload does not decode as events: {exc}") from exc
    if not events:
        raise CodecError("a batch payload with no events")
    return events


def event_count(payload: bytes) -> int:
    """How many events a payload this build wrote holds, read from the msgpack array header without
    decoding the events (the producer counts replayed spool records in events)."""
    if not payload or payload[0] != BATCH_VERSION or len(payload) < 2:
        return 1
    head = payload[1]
    if 0x90 <= head <= 0x9F:
        return head & 0x0F
    if head == 0xDC and len(payload) >= 4:
        return int.from_bytes(payload[2:4], "big")
    if head == 0xDD and len(payload) >= 6:
        return int.from_bytes(payload[2:6], "big")
    return 1
