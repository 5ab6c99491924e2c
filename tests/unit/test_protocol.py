"""The IQFeed decoder, command formatting and symbol rules, line by line (no sockets)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from events import Depth, FeedError, Heartbeat, HistoryBar, HistoryTick, Quote, SymbolNotFound, System, Trade
from collectors.iqfeed import decode as decode_cli
from collectors.iqfeed.protocol import (
    IQFEED_DEFAULT_FIELDS,
    SKIPPED_LEVEL1_COUNTERS,
    FeedDate,
    InvalidSymbol,
    Level1Decoder,
    ProtocolError,
    decode_admin,
    decode_level2,
    decode_lookup,
    depth_watch_command,
    format_command,
    history_ticks_command,
    select_update_fields_command,
    set_protocol_command,
    split_conditions,
    validate_symbol,
    watch_command,
)

pytestmark = pytest.mark.timeout(30)

NY = ZoneInfo("America/New_York")
HISTORY = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
FIELDNAMES = "S,CURRENT UPDATE FIELDNAMES,Symbol," + ",".join(IQFEED_DEFAULT_FIELDS)


def eastern_ns(*args: int) -> int:
    """Reference conversion through datetime, independent of the decoder's arithmetic."""
    wall = datetime(*args[:6], tzinfo=NY)
    micros = args[6] if len(args) > 6 else 0
    return int(wall.astimezone(timezone.utc).timestamp()) * 1_000_000_000 + micros * 1000


def decoder_at(heartbeat: str) -> Level1Decoder:
    decoder = Level1Decoder(clock=lambda: 0)
    decoder.decode(FIELDNAMES)
    decoder.decode(f"T,{heartbeat}")
    return decoder


def q_line(time: str = "10:00:00.000001", contents: str = "Cbacv", conditions: str = "17", extra: str = "") -> str:
    return f"Q,AAPL,150.2500,100,{time},11,5000,150.2400,300,150.2600,400,,,,149.0000,{contents},{conditions},{extra}"


# ----------------------------------------------------------------------- Level 1


def test_update_with_trade_and_quote_letters_yields_both_with_exact_values() -> None:
    decoder = decoder_at("20180709 14:18:31")
    events = decoder.decode("Q,AAPL,123.0000,50,19:59:53.475143,11,0,123.0000,1700,123.0500,200,,,,123.0000,Cbacv,400142,")
    trade, quote = events
    expected_ns = eastern_ns(2018, 7, 9, 19, 59, 53, 475143)
    assert trade == Trade(
        symbol="AAPL", price=123.0, size=50, ts_ns=expected_ns, conditions=("40", "01", "42"),
        market_center=11, total_volume=0, basis="C",
    )
    assert quote == Quote(symbol="AAPL", bid=123.0, bid_size=1700, ask=123.05, ask_size=200, ts_ns=expected_ns)


@pytest.mark.parametrize(
    ("contents", "kinds", "basis"),
    [
        ("Cv", ["trade"], "C"),
        ("Ev", ["trade"], "E"),
        ("O", ["trade"], "O"),
        ("ba", ["quote"], None),
        ("b", ["quote"], None),
        ("a", ["quote"], None),
        ("v", [], None),
        ("ohlc", [], None),
        ("Ebav", ["trade", "quote"], "E"),
    ],
)
def test_message_contents_letters_decide_trade_and_quote(contents: str, kinds: list[str], basis: str | None) -> None:
    events = decoder_at("20260310 10:00:00").decode(q_line(contents=contents))
    assert [type(e).__name__.lower() for e in events] == kinds
    if basis:
        assert events[0].basis == basis


def test_quote_only_update_is_stamped_with_the_heartbeat_not_the_stale_trade_time() -> None:
    (quote,) = decoder_at("20260310 15:00:05").decode(q_line(time="09:31:00.000000", contents="ba"))
    assert quote.ts_ns == eastern_ns(2026, 3, 10, 15, 0, 5)


def test_selected_bid_and_ask_time_stamp_a_quote() -> None:
    decoder = decoder_at("20260310 15:00:05")
    decoder.decode("S,CURRENT UPDATE FIELDNAMES,Symbol,Bid,Bid Size,Bid Time,Ask,Ask Size,Ask Time,Message Contents")
    (quote,) = decoder.decode("Q,MSFT,10.5,100,15:00:04.250000,10.6,200,15:00:04.500000,ba,")
    assert quote.ts_ns == eastern_ns(2026, 3, 10, 15, 0, 4, 500000)
    assert (quote.bid, quote.bid_size, quote.ask, quote.ask_size) == (10.5, 100, 10.6, 200)


def test_field_list_change_is_applied_to_later_lines() -> None:
    decoder = decoder_at("20260310 10:00:00")
    (system,) = decoder.decode(
        "S,CURRENT UPDATE FIELDNAMES,Symbol,Message Contents,Most Recent Trade Size,Most Recent Trade,"
        "Most Recent Trade Time,TickID,Most Recent Trade Conditions"
    )
    assert system.name == "CURRENT UPDATE FIELDNAMES"
    (trade,) = decoder.decode("Q,SPY,C,25,450.5,10:00:01.000000,987654,3D,")
    assert (trade.price, trade.size, trade.tick_id, trade.conditions) == (450.5, 25, 987654, ("3D",))
    assert trade.market_center is None and trade.total_volume is None


def test_extra_trailing_fields_are_tolerated() -> None:
    (trade, quote) = decoder_at("20260310 10:00:00").decode(q_line(extra="X,Y,Z,"))
    assert trade.price == 150.25 and quote.ask == 150.26


def test_missing_fields_are_a_protocol_error_with_the_raw_line() -> None:
    line = "Q,AAPL,150.25,100,10:00:00.000001,11"
    with pytest.raises(ProtocolError) as caught:
        decoder_at("20260310 10:00:00").decode(line)
    assert caught.value.line == line
    assert line in str(caught.value)


@pytest.mark.parametrize(
    "line",
    [
        q_line(time="25:00:00.000000"),
        q_line(time="10:00"),
        q_line(time="10:00:00.00000x"),
        q_line(conditions="873"),
        q_line(conditions="8Z"),
        "Q,AAPL,abc,100,10:00:00.000001,11,5000,1,1,1,1,,,,1,C,17,",
        "Q,AAPL,nan,100,10:00:00.000001,11,5000,1,1,1,1,,,,1,C,17,",
        "Q,AAPL,1.0,-5,10:00:00.000001,11,5000,1,1,1,1,,,,1,C,17,",
        "Q,AAPL,,100,10:00:00.000001,11,5000,1,1,1,1,,,,1,C,17,",
        "Q,AAPL,1.0,100,10:00:00.000001,11,5000,inf,1,1,1,,,,1,b,17,",
        "Q,,1.0,100,10:00:00.000001,11,5000,1,1,1,1,,,,1,C,17,",
        "T,2026031 10:00:00",
        "T,20261340 10:00:00",
        "S",
        "S,STATS,1,2",
        "n,",
        "E,",
        "Z,whatever",
        "",
    ],
)
def test_malformed_level1_lines_raise_protocol_error(line: str) -> None:
    decoder = decoder_at("20260310 10:00:00")
    with pytest.raises(ProtocolError):
        decoder.decode(line)
    events, error = decoder.safe_decode(line)
    assert events == [] and isinstance(error, ProtocolError)


def test_trade_conditions_split_into_two_hex_digit_codes() -> None:
    assert split_conditions("873D17") == ("87", "3D", "17")
    assert split_conditions("") == ()


def test_heartbeat_sets_the_date_for_trade_times() -> None:
    decoder = Level1Decoder(clock=lambda: 0)
    (beat,) = decoder.decode("T,20260115 09:30:00")
    assert beat == Heartbeat(ts_ns=eastern_ns(2026, 1, 15, 9, 30, 0))
    (trade, _quote) = decoder.decode(q_line(time="09:30:00.250000"))
    assert trade.ts_ns == eastern_ns(2026, 1, 15, 9, 30, 0, 250000)
    assert trade.ts_ns == 1768487400_250000000  # 14:30:00.25 UTC (EST, UTC-5)


def test_trade_just_after_midnight_with_heartbeat_before_it_is_the_next_day() -> None:
    (trade, _) = decoder_at("20261231 23:59:59").decode(q_line(time="00:00:01.000000"))
    assert trade.ts_ns == eastern_ns(2027, 1, 1, 0, 0, 1)


def test_trade_just_before_midnight_with_heartbeat_after_it_is_the_previous_day() -> None:
    (trade, _) = decoder_at("20270101 00:00:01").decode(q_line(time="23:59:58.000000"))
    assert trade.ts_ns == eastern_ns(2026, 12, 31, 23, 59, 58)


def test_each_heartbeat_places_the_same_wall_time_afresh() -> None:
    decoder = decoder_at("20261231 23:59:59")
    (late, _) = decoder.decode(q_line(time="00:00:01.000000"))
    decoder.decode("T,20270101 00:00:02")
    (same, _) = decoder.decode(q_line(time="00:00:01.000000"))
    decoder.decode("T,20270101 12:00:00")
    (noon, _) = decoder.decode(q_line(time="00:00:01.000000"))
    assert late.ts_ns == same.ts_ns == noon.ts_ns == eastern_ns(2027, 1, 1, 0, 0, 1)
    decoder.decode("T,20270101 23:00:00")
    (next_day, _) = decoder.decode(q_line(time="00:00:01.000000"))
    assert next_day.ts_ns == eastern_ns(2027, 1, 2, 0, 0, 1)


def test_summer_and_winter_offsets_follow_dst() -> None:
    (summer, _) = decoder_at("20260701 12:00:00").decode(q_line(time="12:00:00.000000"))
    (winter, _) = decoder_at("20261201 12:00:00").decode(q_line(time="12:00:00.000000"))
    assert summer.ts_ns == int(datetime(2026, 7, 1, 16, tzinfo=timezone.utc).timestamp()) * 10**9
    assert winter.ts_ns == int(datetime(2026, 12, 1, 17, tzinfo=timezone.utc).timestamp()) * 10**9


def test_spring_forward_day_converts_each_side_of_the_gap() -> None:
    decoder = decoder_at("20260308 12:00:00")
    (before, _) = decoder.decode(q_line(time="01:59:59.000000"))
    (after, _) = decoder.decode(q_line(time="03:00:00.000000"))
    assert before.ts_ns == int(datetime(2026, 3, 8, 6, 59, 59, tzinfo=timezone.utc).timestamp()) * 10**9
    assert after.ts_ns - before.ts_ns == 1_000_000_000


def test_fall_back_day_converts_each_side_of_the_change() -> None:
    decoder = decoder_at("20261101 12:00:00")
    (morning, _) = decoder.decode(q_line(time="00:30:00.000000"))
    (noon, _) = decoder.decode(q_line(time="12:00:00.000000"))
    assert morning.ts_ns == int(datetime(2026, 11, 1, 4, 30, tzinfo=timezone.utc).timestamp()) * 10**9
    assert noon.ts_ns == int(datetime(2026, 11, 1, 17, 0, tzinfo=timezone.utc).timestamp()) * 10**9


def test_feed_date_from_wall_clock_stands_in_before_the_first_heartbeat() -> None:
    noon_utc = int(datetime(2026, 6, 2, 16, 0, tzinfo=timezone.utc).timestamp()) * 10**9
    decoder = Level1Decoder(clock=lambda: noon_utc)
    (trade, _) = decoder.decode(q_line(time="11:59:59.000000"))
    assert trade.ts_ns == noon_utc - 10**9
    assert FeedDate.from_epoch_ns(noon_utc).second_of_day == 12 * 3600


def test_system_messages_report_the_dtn_connection_state() -> None:
    decoder = decoder_at("20260310 10:00:00")
    assert decoder.decode("S,SERVER CONNECTED") == [System(name="SERVER CONNECTED", connected=True)]
    assert decoder.decode("S,SERVER DISCONNECTED")[0].connected is False
    assert decoder.decode("S,SERVER RECONNECT FAILED")[0].connected is False
    assert decoder.decode("S,SYMBOL LIMIT REACHED,ZVZZT") == [System(name="SYMBOL LIMIT REACHED", fields=("ZVZZT",))]
    assert decoder.decode("S,KEY,12345,")[0].fields == ("12345",)


def test_symbol_not_found_and_error_lines() -> None:
    decoder = decoder_at("20260310 10:00:00")
    assert decoder.decode("n,ZZZZ") == [SymbolNotFound(symbol="ZZZZ")]
    assert decoder.decode("E,Disconnected from server") == [FeedError(message="Disconnected from server")]


# Format-exact lines from public clients' tests: IQFeed.CSharpApiClient (F, R, N, C) and
# pyiqfeed's field order (R, N). Each kind yields no event and is counted under its name.
UNPUBLISHED_LEVEL1 = {
    "fundamentals_skipped": "F,MSFT,5,65.6,28624000,97.9500,67.1400,97.9500,83.8300,,,,,,,,,,,1.49,,0.06,06,,"
                            "MICROSOFT,MSFT,76.800,1.27,,159851.0,64527.0,03/31/2018,76073.0,7683198,,"
                            "0.50 02/18/2003,0.50 03/29/1999,,,14,4,7372,24.82,1,21,05/10/2018,05/18/2017,"
                            "05/10/2018,02/09/2018,85.5400,,,,,511210,,,,",
    "regionals_skipped": "R,AAPL,X,1.23,100,13:00:00,1.24,200,13:00:01,0,1,2,",
    "news_skipped": "N,1234,1122,AAPL:NFLX,20000102 152001,Very cool news,",
    "trade_corrections_skipped": "C,AAPL,I,03/30/2021,19:59:14.503633,183.3600,13,101123,8801,17",
}


@pytest.mark.parametrize(("counter", "line"), list(UNPUBLISHED_LEVEL1.items()), ids=list(UNPUBLISHED_LEVEL1))
def test_unpublished_level1_kinds_are_counted_per_kind_and_reported_not_dropped(counter: str, line: str) -> None:
    heard: list[tuple[str, str]] = []
    decoder = decoder_at("20260310 10:00:00")
    decoder.on_skip = lambda name, raw: heard.append((name, raw))
    assert decoder.decode(line) == []
    assert decoder.decode(line) == []
    assert decoder.skipped == {counter: 2}
    assert heard == [(counter, line), (counter, line)]
    assert counter in SKIPPED_LEVEL1_COUNTERS


@pytest.mark.parametrize(
    "line",
    [
        "F,AAPL",  # a fundamental line only needs its symbol: the field list varies by version
        "F,AAPL,5,31.2,",
        "N,DTN,,,,",  # the five news fields, all but the distributor empty
        "C,AAPL",  # no confirmed correction layout: only the symbol is checked
        "R,AAPL,,,,,,,,,,",  # the eleven regional fields, empty
    ],
)
def test_short_but_identifiable_unpublished_lines_are_counted(line: str) -> None:
    decoder = decoder_at("20260310 10:00:00")
    assert decoder.decode(line) == []
    assert sum(decoder.skipped.values()) == 1


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("F", "fundamental message needs 1 fields, got 0"),
        ("F,", "fundamental message without a symbol"),
        (",AAPL", "unknown Level 1 message type ''"),
        ("R,AAPL,X,1.23,100", "regional quote needs 11 fields, got 4"),
        ("R,,X,1.23,100,13:00:00,1.24,200,13:00:01,0,1,2,", "regional quote without a symbol"),
        ("N,1234,1122,AAPL", "news headline needs 5 fields, got 3"),
        ("N,,1122,AAPL:NFLX,20000102 152001,Very cool news,", "news headline without a distributor"),
        ("C", "trade correction needs 1 fields, got 0"),
        ("C,,I,03/30/2021,19:59:14.503633,183.36,13,101123,8801,17", "trade correction without a symbol"),
        ("FX,AAPL", "unknown Level 1 message type 'FX'"),
    ],
)
def test_garbled_unpublished_lines_raise_protocol_error_and_are_not_counted(line: str, reason: str) -> None:
    decoder = decoder_at("20260310 10:00:00")
    heard: list[str] = []
    decoder.on_skip = lambda name, raw: heard.append(name)
    with pytest.raises(ProtocolError) as caught:
        decoder.decode(line)
    assert caught.value.reason == reason and caught.value.line == line
    events, error = decoder.safe_decode(line)
    assert events == [] and error is not None and error.reason == reason
    assert decoder.skipped == {} and heard == []


def test_unpublished_lines_leave_the_decoder_state_alone() -> None:
    decoder = decoder_at("20180709 14:18:31")
    for line in UNPUBLISHED_LEVEL1.values():
        decoder.decode(line)
    trade, _quote = decoder.decode("Q,AAPL,123.0000,50,19:59:53.475143,11,0,123.0000,1700,123.0500,200,,,,123.0000,Cbacv,400142,")
    assert trade.ts_ns == eastern_ns(2018, 7, 9, 19, 59, 53, 475143)
    assert decoder.skipped == dict.fromkeys(UNPUBLISHED_LEVEL1, 1)


def test_decode_cli_names_each_unpublished_line_instead_of_an_empty_result() -> None:
    lines = [*UNPUBLISHED_LEVEL1.values(), "R,AAPL", FIELDNAMES]
    source = io.BytesIO("".join(line + "\r\n" for line in lines).encode("latin-1"))
    sink = io.BytesIO()
    assert decode_cli.run("level1", source, sink) == 1
    rows = [json.loads(row) for row in sink.getvalue().decode().splitlines()]
    assert rows[:4] == [{"events": [], "skipped": counter} for counter in UNPUBLISHED_LEVEL1]
    assert rows[4] == {"error": "regional quote needs 11 fields, got 1: 'R,AAPL'"}
    assert "skipped" not in rows[5] and rows[5]["events"][0]["kind"] == "system"


def test_safe_decode_turns_an_internal_failure_into_a_protocol_error() -> None:
    decoder = decoder_at("20260310 10:00:00")
    decoder.layout = None  # type: ignore[assignment]  # simulate a decoder bug
    events, error = decoder.safe_decode(q_line())
    assert events == [] and error is not None and "decoder failure" in error.reason


# ----------------------------------------------------------------- Level 2, admin


def test_level2_order_and_price_level_messages() -> None:
    ts = eastern_ns(2019, 4, 23, 20, 31, 4, 876740)
    assert decode_level2("3,@ESM19,12345678,MD01,B,2938.25,65,11,2,20:31:04.876740,2019-04-23,") == [
        Depth(symbol="@ESM19", action="add", side="bid", price=2938.25, size=65, order_id="12345678", mmid="MD01", ts_ns=ts)
    ]
    assert decode_level2("8,@ESM19,A,2938.25,65,10,2,20:31:04.876740,2019-04-23,") == [
        Depth(symbol="@ESM19", action="update", side="ask", price=2938.25, size=65, order_count=10, ts_ns=ts)
    ]
    assert decode_level2("S,CLEAR DEPTH,@ESM19,B,") == [Depth(symbol="@ESM19", action="clear", side="bid")]


def test_market_maker_quote_yields_only_valid_sides() -> None:
    events = decode_level2("2,AAPL,NSDQ,150.1,150.2,100,200,10:00:00.000000,2026-03-10,52,10:00:01.000000,F,T,T,")
    assert [(e.side, e.price, e.size, e.mmid, e.action) for e in events] == [("ask", 150.2, 200, "NSDQ", "update")]
    assert events[0].ts_ns == eastern_ns(2026, 3, 10, 10, 0, 1)


@pytest.mark.parametrize(
    "line",
    ["3,@ESM19,1,MD01,X,2938.25,65,11,2,20:31:04.876740,2019-04-23,", "7,@ESM19,B,1,2", "9,@ESM19,B,1,20:31:04,2019-02-30,", "Q,AAPL,1"],
)
def test_malformed_level2_lines_raise_protocol_error(line: str) -> None:
    with pytest.raises(ProtocolError):
        decode_level2(line)


def test_admin_stats_with_connected_and_not_connected_status() -> None:
    (connected,) = decode_admin("S,STATS,66.112.148.223,60002,500,0,1,0,5,0,Aug 20 2:42PM,Aug 20 2:42PM,Connected,5.1.1.0,416828,0.55,0.02,0.03,3.94,0.11,0.18,")
    (down,) = decode_admin("S,STATS,,,0,0,1,0,0,0,,,Not Connected,6.0.0.4,474614,0,0,,0.02,0.02,,")
    assert (connected.name, connected.connected) == ("STATS", True)
    assert down.connected is False
    with pytest.raises(ProtocolError):
        decode_admin("S,STATS,,,0,0,1,0,0,0,,,Maybe,6.0.0.4,")


# ------------------------------------------------------------------------- lookup


def test_lookup_rows_with_request_id_marker_end_and_errors() -> None:
    row = decode_lookup("B7,LH,2026-03-10 10:00:00.500000,10.5,100,5000,10.4,10.6,42,C,11,17,0,1,", "ticks", "AAPL")
    assert row.request_id == "B7" and not row.end
    assert row.events == [
        HistoryTick(symbol="AAPL", ts_ns=eastern_ns(2026, 3, 10, 10, 0, 0, 500000), price=10.5, size=100,
                    total_volume=5000, bid=10.4, ask=10.6, tick_id=42, basis="C", market_center=11,
                    conditions=("17",), request_id="B7")
    ]
    assert decode_lookup("B7,!ENDMSG!,", "ticks").end
    assert decode_lookup("B7,E,!NO_DATA!,", "ticks").events == [FeedError(message="!NO_DATA!", request_id="B7")]
    assert decode_lookup("E,!NO_DATA!,,", "ticks").events == [FeedError(message="!NO_DATA!")]


def test_lookup_interval_bar_keeps_iqfeed_column_order() -> None:
    (bar,) = decode_lookup("LH,2026-03-10 10:01:00,11.0,9.0,10.0,10.5,5000,300,12,", "bars", "MSFT").events
    assert bar == HistoryBar(symbol="MSFT", ts_ns=eastern_ns(2026, 3, 10, 10, 1, 0), open=10.0, high=11.0, low=9.0,
                             close=10.5, volume=5000, period_volume=300, trades=12)


def test_lookup_history_sample_decodes_every_tick_in_order() -> None:
    lines = HISTORY.read_bytes().decode("latin-1").splitlines()
    rows = [decode_lookup(line, "ticks", "XYZ") for line in lines]
    assert rows[-1].end
    ticks = [event for row in rows[:-1] for event in row.events]
    assert len(ticks) == 32_627  # the file has 32,628 lines: 32,627 ticks and !ENDMSG!
    assert all(isinstance(t, HistoryTick) for t in ticks)
    assert all(a.ts_ns <= b.ts_ns for a, b in zip(ticks, ticks[1:]))
    first = ticks[0]
    assert (first.price, first.size, first.bid, first.ask, first.basis, first.conditions) == (1.52, 1000, 1.56, 1.57, "E", ("17", "47"))
    assert first.ts_ns == eastern_ns(2021, 3, 1, 4, 0, 0, 28010)
    assert ticks[1].conditions == ("87", "3D", "17")


# ---------------------------------------------------------------- commands, symbols


@pytest.mark.parametrize(
    "symbol",
    ["AAPL\r\nS,SET LOGINID,x", "AA PL", "AAPL,", "AA\tPL", "AA\x00PL", "", "A" * 31, "ÄAPL", "AAPL\n"],
)
def test_invalid_symbols_are_rejected_before_anything_is_sent(symbol: str) -> None:
    with pytest.raises(InvalidSymbol):
        validate_symbol(symbol)
    with pytest.raises(InvalidSymbol):
        watch_command(symbol)


def test_valid_symbols_are_normalised_to_upper_case() -> None:
    assert validate_symbol("aapl") == "AAPL"
    assert validate_symbol("@ESM19") == "@ESM19"
    assert validate_symbol("BRK.B") == "BRK.B"
    assert watch_command("msft") == b"wMSFT\r\n"
    assert depth_watch_command("@ES#") == b"WPL,@ES#\r\n"
    assert depth_watch_command("@ES#", "orders") == b"WOR,@ES#\r\n"


def test_commands_end_in_crlf_and_refuse_embedded_line_breaks() -> None:
    assert set_protocol_command() == b"S,SET PROTOCOL,6.2\r\n"
    assert select_update_fields_command(["Bid", "Ask"]) == b"S,SELECT UPDATE FIELDS,Bid,Ask\r\n"
    with pytest.raises(ValueError):
        format_command("S", "SET CLIENT NAME", "x\r\nS,CONNECT")


def test_history_ticks_command_uses_eastern_seconds_rounded_outwards() -> None:
    start = eastern_ns(2026, 3, 10, 9, 30, 0, 500000)
    end = eastern_ns(2026, 3, 10, 9, 45, 0, 100)
    assert history_ticks_command("aapl", start, end, "B1") == b"HTT,AAPL,20260310 093000,20260310 094501,,,,1,B1,500\r\n"


def test_decode_cli_names_unpublished_level2_lines_too() -> None:
    lines = ["M,NSDQ,Nasdaq Stock Market,", "Z,AAPL,NSDQ,,,,,10:00:00.000000,2026-03-10,52,10:00:00.000000,F,F,T,", "M,"]
    source = io.BytesIO("".join(line + "\r\n" for line in lines).encode("latin-1"))
    sink = io.BytesIO()
    assert decode_cli.run("level2", source, sink) == 1
    rows = [json.loads(row) for row in sink.getvalue().decode().splitlines()]
    assert rows[0] == {"events": [], "skipped": "market_maker_names_skipped"}
    assert rows[1] == {"events": [], "skipped": "market_maker_empty_quotes_skipped"}
    assert "error" in rows[2]
