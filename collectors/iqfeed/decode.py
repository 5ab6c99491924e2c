"""Decode raw IQFeed lines from stdin into JSON, one object per input line.

    python -m collectors.iqfeed.decode --stream level1 < capture.txt

Each output line is ``{"events": [...]}`` (events as the pipeline serialises them,
tagged by ``kind``) or ``{"error": "..."}`` for a line the decoder rejects. A Level 1
line of a kind the pipeline does not publish (``F``, ``R``, ``N``, ``C``) comes out as
``{"events": [], "skipped": "<counter>"}``, named as the client counts it. State such
as the Level 1 update field list and heartbeat date carries over between lines, exactly
as on a live connection, so a capture can be replayed to reproduce a decoding problem.
"""

from __future__ import annotations

import argparse
import functools
import sys
from typing import BinaryIO, Callable

import msgspec

from events import Event
from collectors.iqfeed.protocol import (
    Level1Decoder,
    LookupKind,
    ProtocolError,
    SkipHook,
    decode_admin,
    decode_level2,
    decode_lookup,
)

STREAMS = ("level1", "level2", "admin", "lookup-ticks", "lookup-bars", "lookup-daily")
_LOOKUP_KINDS: dict[str, LookupKind] = {
    "lookup-ticks": "ticks",
    "lookup-bars": "bars",
    "lookup-daily": "daily",
}


class _Events(msgspec.Struct, omit_defaults=True):
    events: list[Event]
    skipped: str = ""


class _Error(msgspec.Struct):
    error: str


def line_decoder(
    stream: str, symbol: str = "", on_skip: SkipHook | None = None
) -> Callable[[str], list[Event]]:
    """The decode function for one stream; raises ProtocolError on a bad line.

    ``on_skip`` hears of Level 1 and Level 2 lines that yield no event (see
    ``Level1Decoder`` and ``decode_level2``).
    """
    if stream == "level1":
        return Level1Decoder(on_skip=on_skip).decode
    if stream == "level2":
        return functools.partial(decode_level2, on_skip=on_skip)
    if stream == "admin":
        return decode_admin
    kind = _LOOKUP_KINDS[stream]
    return lambda line: decode_lookup(line, kind, symbol).events


def run(stream: str, source: BinaryIO, sink: BinaryIO, symbol: str = "") -> int:
    """Decode every line of ``source`` to ``sink``; returns how many lines were rejected."""
    skipped: list[str] = []
    decode = line_decoder(stream, symbol, on_skip=lambda counter, _line: skipped.append(counter))
    encoder = msgspec.json.Encoder()
    errors = 0
    for raw in source:
        line = raw.decode("latin-1").rstrip("\r\n")
        skipped.clear()
        try:
            events = decode(line)
            out: msgspec.Struct = _Events(events, skipped=skipped[0] if skipped else "")
        except ProtocolError as exc:
            errors += 1
            out = _Error(str(exc))
        sink.write(encoder.encode(out) + b"\n")
    sink.flush()
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collectors.iqfeed.decode", description=__doc__.split("\n")[0])
    parser.add_argument("--stream", required=True, choices=STREAMS, help="which port the lines came from")
    parser.add_argument("--symbol", default="", help="symbol to put on lookup rows (they carry none)")
    args = parser.parse_args(argv)
    run(args.stream, sys.stdin.buffer, sys.stdout.buffer, args.symbol)
    return 0


if __name__ == "__main__":
    sys.exit(main())
