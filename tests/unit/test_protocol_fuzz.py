"""Fuzzing every decoder with random lines and with mutations of real ones.

Whatever comes in, a decoder either raises :class:`ProtocolError` (the connection counts
and logs it) or returns events whose every value its table can hold: integers inside
their column's range, ts_ns inside the partition range, floats finite, and the whole
list encodable by msgpack as the bus does. The real lines are the shared samples
(``messages.txt``) and lines built from the shared tick history (as lookup rows, as
Level 1 updates in the selected field list, as Level 2 price levels).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Callable

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import Event, System
from collectors.iqfeed.protocol import (
    DEFAULT_UPDATE_FIELDS,
    Level1Decoder,
    ProtocolError,
    decode_admin,
    decode_level2,
    decode_lookup,
)
from tests.unit.test_protocol_conformance import sections
from tests.unit.test_protocol_properties import LINE
from tests.unit.test_protocol_ranges import assert_storable

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SAMPLES = Path("/work/shared/iqfeed/samples")
SELECTED = "S,CURRENT UPDATE FIELDNAMES,Symbol," + ",".join(DEFAULT_UPDATE_FIELDS)
WALL_CLOCK_NS = 1_795_000_000_000_000_000  # 2026-11-18, what a live machine's clock says
LOOKUPS = ("ticks", "bars", "daily")


@cache
def history_rows() -> list[list[str]]:
    text = (SAMPLES / "history_ticks_2021-03-01_to_03.csv").read_text("latin-1")
    return [line.split(",") for line in text.splitlines()[::97] if line[:2] == "20"]  # ~340 rows over 3 days


def level1_update(row: list[str]) -> str:
    """A history row as the Level 1 update that announced it, in the selected field list."""
    day = row[0][:10]
    values = {
        "Most Recent Trade": row[1], "Most Recent Trade Size": row[2], "Most Recent Trade Time": row[0][11:],
        "Most Recent Trade Date": f"{day[5:7]}/{day[8:10]}/{day[:4]}", "Most Recent Trade Market Center": row[8],
        "Total Volume": row[3], "Bid": row[4], "Bid Size": "300", "Ask": row[5], "Ask Size": "400",
        "Message Contents": row[7] + "bav", "Most Recent Trade Conditions": row[9],
    }
    return ",".join(["Q", "XYZ", *(values.get(name, "") for name in DEFAULT_UPDATE_FIELDS)]) + ","


def level2_level(row: list[str]) -> str:
    return f"8,XYZ,B,{row[4]},{row[2]},3,4,{row[0][11:]},{row[0][:10]},"


@cache
def real_lines() -> dict[str, list[str]]:
    samples = sections()
    rows = history_rows()
    lookup = samples["lookup"]
    return {
        "level1": [*samples["level1"], SELECTED, *(level1_update(row) for row in rows)],
        "level2": [*samples["level2"], *(level2_level(row) for row in rows)],
        "admin": samples["admin"],
        "ticks": [line for line in lookup if not line.startswith("2018-04-27")] + [",".join(row) for row in rows],
        "bars": ["LH,2026-03-10 10:01:00,11.0,9.0,10.0,10.5,5000,300,12,", "7,LH,2021-03-01 09:31:00,1.6,1.5,1.5,1.6,9000,700,31,"],
        "daily": [line for line in lookup if line.startswith("2018-04-27")] + ["LH,2021-03-01,1.66,1.39,1.52,1.60,10900,0,"],
    }


# Values that have broken, or could break, a parser or a column.
NASTY = st.sampled_from([
    "", "0", "-0", "-1", "1", str(2**31 - 1), str(2**31), str(2**63 - 1), str(2**63), str(2**64), str(-2**63),
    "99999999999999999999", "9" * 400, "1" * 5000, "nan", "NaN", "inf", "-inf", "1e400", "-1e400", "1e308", "1e-400",
    "1_000", " 7", "7 ", "+5", "0x10", "\u0663", "\u00b2", "1.5.5", ".", "-", "e5", "abc", "\x00", "\xff",
    "12:00:00", "24:00:00", "23:59:60", "12:00:00.1234567890", "00:00:00.000000", "23:59:59.999999",
    "02/30/2021", "13/01/2021", "12/31/2300", "01/01/1970", "12/31/1969", "03/14/2021", "11/07/2021", "3/1/2021",
    "2021-03-01", "2300-01-01", "1969-12-31", "1970-01-01", "2106-02-06", "0000-00-00", "20210301 10:00:00",
    "99991231 23:59:59", "2021-03-01 04:00:00.028010", "9999-12-31 23:59:59", "C", "E", "O", "Cbacv", "ba", "v",
    "B", "A", "T", "F", "Connected", "Not Connected", "LH", "!ENDMSG!", "E", "Symbol", "Most Recent Trade Date",
    "TickID", "Bid Time", "17", "873D17", "8Z",
])


@st.composite
def mutated(draw: st.DrawFn, lines: list[str]) -> str:
    """A real line with one to three edits: a field replaced, dropped, doubled or added, a cut, a character."""
    line = draw(st.sampled_from(lines))
    for _ in range(draw(st.integers(1, 3))):
        parts = line.split(",")
        index = draw(st.integers(0, len(parts) - 1))
        edit = draw(st.integers(0, 6))
        if edit <= 2:
            parts[index] = draw(NASTY)
        elif edit == 3:
            del parts[index]
        elif edit == 4:
            parts.insert(index, parts[index])
        elif edit == 5:
            parts.insert(index, draw(st.one_of(NASTY, st.text(max_size=8))))
        else:
            text = ",".join(parts)
            cut = draw(st.integers(0, len(text)))
            parts = (text[:cut] + draw(st.text(max_size=2)) + text[cut + draw(st.integers(0, 2)):]).split(",")
        line = ",".join(parts)
    return line


def decoded_or_rejected(decode: Callable[[str], list[Event]], line: str) -> list[Event]:
    """The events of ``line``, checked storable; [] when it is a ProtocolError. Anything else fails the test."""
    try:
        events = decode(line)
    except ProtocolError as exc:
        assert exc.line == line
        return []
    assert_storable(events)
    msgspec.msgpack.encode(events)
    return events


def level1_decoder() -> Level1Decoder:
    decoder = Level1Decoder(clock=lambda: WALL_CLOCK_NS)
    decoder.decode(SELECTED)
    decoder.decode("T,20210301 09:30:00")
    return decoder


def lookup(kind: str) -> Callable[[str], list[Event]]:
    return lambda line: decode_lookup(line, kind, "XYZ").events  # type: ignore[arg-type]


def test_the_real_lines_themselves_decode_to_storable_events() -> None:
    """The seeds are valid, so the mutations below start from lines that decode."""
    decoders = {"level1": level1_decoder().decode, "level2": decode_level2, "admin": decode_admin,
                **{kind: lookup(kind) for kind in ("ticks", "bars", "daily")}}
    for stream, lines in real_lines().items():
        events = [event for line in lines for event in decoders[stream](line)]  # raises on a bad seed
        assert events, stream
        assert_storable(events)


@FUZZ
@given(st.data())
def test_level1_over_a_stream_of_mutated_real_lines(data: st.DataObject) -> None:
    decoder = level1_decoder()
    for line in data.draw(st.lists(mutated(real_lines()["level1"]), min_size=1, max_size=8)):
        events, error = decoder.safe_decode(line)
        assert error is None or (events == [] and isinstance(error, ProtocolError) and error.line == line)
        assert_storable(events)
        msgspec.msgpack.encode(events)


@FUZZ
@given(st.data())
def test_level2_over_mutated_real_lines(data: st.DataObject) -> None:
    decoded_or_rejected(decode_level2, data.draw(mutated(real_lines()["level2"])))


def assert_stats_numbers(events: list[Event]) -> None:
    """``S,STATS`` keeps its fields as text, but what reads them must find numbers there.

    Positions as pyiqfeed reads them: ServerPort..AttemptedReconnections are counts,
    TotalKBsRecv..AvgKBsPerSecSent amounts (fields[i] is line field i + 2), read with
    int() and float() as pyiqfeed does.
    """
    for event in events:
        if isinstance(event, System) and event.name == "STATS":
            fields = [*event.fields, *[""] * 20]
            assert all(not text or 0 <= int(text) <= (65_535 if i == 1 else 2**63 - 1)
                       for i, text in enumerate(fields[1:8], start=1)), event.fields
            assert all(not text or 0 <= float(text) < math.inf for text in fields[13:19]), event.fields


@FUZZ
@given(st.data())
def test_admin_over_mutated_real_lines(data: st.DataObject) -> None:
    assert_stats_numbers(decoded_or_rejected(decode_admin, data.draw(mutated(real_lines()["admin"]))))


@FUZZ
@given(st.data(), st.sampled_from(LOOKUPS))
def test_lookup_over_mutated_real_lines(data: st.DataObject, kind: str) -> None:
    decoded_or_rejected(lookup(kind), data.draw(mutated(real_lines()[kind])))


@FUZZ
@given(LINE)
def test_every_decoder_over_random_lines(line: str) -> None:
    decoded_or_rejected(level1_decoder().decode, line)
    decoded_or_rejected(decode_level2, line)
    decoded_or_rejected(decode_admin, line)
    for kind in LOOKUPS:
        decoded_or_rejected(lookup(kind), line)
