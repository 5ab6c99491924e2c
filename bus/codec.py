"""Event <-> bus payload: msgspec msgpack behind a one-byte schema version.

The leading byte is :data:`events.SCHEMA_VERSION`, so a consumer can tell
"a future producer wrote this" (:class:`UnsupportedVersion`) from "this is garbage"
(:class:`CodecError`) and send either to the dead-letter topic instead of crashing or
blocking a partition. msgpack of a tagged Struct union is compact and, with a reused
Encoder/Decoder, a few hundred nanoseconds per event.
"""

from __future__ import annotations

import msgspec

from events import SCHEMA_VERSION, Event

SUPPORTED_VERSIONS: frozenset[int] = frozenset({SCHEMA_VERSION})
_HEADER = bytes([SCHEMA_VERSION])
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Event)


class CodecError(ValueError):
    """A bus payload is not a decodable event; the message goes to the dead-letter topic."""


class UnsupportedVersion(CodecError):
    """The payload carries a schema version this build does not read (upgrade the consumer)."""


def encode(event: Event) -> bytes:
    """Version byte + msgpack of the tagged event."""
    return _HEADER + _encoder.encode(event)


def decode(payload: bytes | None) -> Event:
    """The event in ``payload``; raises :class:`CodecError` naming what is wrong with it."""
    if not payload:
        raise CodecError("empty payload (tombstone or truncated message)")
    version = payload[0]
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersion(
            f"schema version {version} is not supported (this build reads {sorted(SUPPORTED_VERSIONS)})"
        )
    try:
        return _decoder.decode(memoryview(payload)[1:])
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise CodecError(f"schema version {version} payload does not decode as an event: {exc}") from exc
