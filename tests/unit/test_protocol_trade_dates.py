"""Trade dates come from the feed: the trade's own date field, else the last heartbeat, never the local clock."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from events import Event, Quote, Trade
from collectors.iqfeed.connections import Level1Connection
from collectors.iqfeed.protocol import (
    DEFAULT_UPDATE_FIELDS,
    Level1Decoder,
    ProtocolError,
    select_update_fields_command,
)
from config import FeedSettings

pytestmark = pytest.mark.timeout(30)

NY = ZoneInfo("America/New_York")
WALL_2026 = int(datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc).timestamp()) * 10**9
IQFEED_DEFAULTS = ("Symbol,Most Recent Trade,Most Recent Trade Size,Most Recent Trade Time,"
                   "Most Recent Trade Market Center,Total Volume,Bid,Bid Size,Ask,Ask Size,Open,High,Low,Close,"
                   "Message Contents,Most Recent Trade Conditions")
DEFAULT_FIELDNAMES = "S,CURRENT UPDATE FIELDNAMES," + IQFEED_DEFAULTS
DATED_FIELDNAMES = ("S,CURRENT UPDATE FIELDNAMES,Symbol,Most Recent Trade,Most Recent Trade Size,"
                    "Most Recent Trade Time,Most Recent Trade Date,Total Volume,Bid,Bid Size,Ask,Ask Size,"
                    "Message Contents")


def eastern_ns(year: int, month: int, day: int, hour: int, minute: int, second: int, micros: int = 0) -> int:
    wall = datetime(year, month, day, hour, minute, second, tzinfo=NY)
    return int(wall.astimezone(timezone.utc).timestamp()) * 10**9 + micros * 1000


def dated(date: str, time: str = "09:30:00.250000", contents: str = "Cbav") -> str:
    """A line in DATED_FIELDNAMES order, the shape of the history sample's first day."""
    return f"Q,XYZ,1.5200,50,{time},{date},1050,1.4300,300,1.5200,400,{contents},"


def decoder(*lines: str) -> Level1Decoder:
    result = Level1Decoder(clock=lambda: WALL_2026)
    for line in lines:
        result.decode(line)
    return result


def test_the_level1_connection_selects_the_trade_date() -> None:
    assert "Most Recent Trade Date" in DEFAULT_UPDATE_FIELDS
    conn = Level1Connection(FeedSettings(), lambda events: None)
    assert "Most Recent Trade Date" in conn.update_fields
    assert b",Most Recent Trade Date," in select_update_fields_command(conn.update_fields)


def test_a_trade_is_dated_by_its_own_date_not_by_the_heartbeat() -> None:
    trade, quote = decoder(DATED_FIELDNAMES, "T,20260310 10:00:00").decode(dated("03/01/2021"))
    assert isinstance(trade, Trade) and trade.ts_ns == eastern_ns(2021, 3, 1, 9, 30, 0, 250000)
    assert isinstance(quote, Quote) and quote.ts_ns == trade.ts_ns


def test_before_any_heartbeat_a_trade_is_dated_by_its_own_date_not_by_the_local_clock() -> None:
    (trade, _quote) = decoder(DATED_FIELDNAMES).decode(dated("03/02/2021", "19:59:59.999999"))
    assert trade.ts_ns == eastern_ns(2021, 3, 2, 19, 59, 59, 999999)


def test_an_empty_trade_date_falls_back_to_the_heartbeat() -> None:
    (trade, _quote) = decoder(DATED_FIELDNAMES, "T,20210303 10:00:01").decode(dated(""))
    assert trade.ts_ns == eastern_ns(2021, 3, 3, 9, 30, 0, 250000)


def test_trade_dates_on_dst_change_days_and_whole_second_times() -> None:
    decode = decoder(DATED_FIELDNAMES, "T,20260310 10:00:00").decode
    (before, _), (after, _) = decode(dated("03/14/2021", "01:59:59")), decode(dated("03/14/2021", "03:00:00"))
    assert after.ts_ns - before.ts_ns == 10**9
    assert before.ts_ns == int(datetime(2021, 3, 14, 6, 59, 59, tzinfo=timezone.utc).timestamp()) * 10**9
    (fall, _) = decode(dated("11/07/2021", "12:00:00.5"))
    assert fall.ts_ns == int(datetime(2021, 11, 7, 17, 0, 0, tzinfo=timezone.utc).timestamp()) * 10**9 + 5 * 10**8


@pytest.mark.parametrize("date", ["13/01/2021", "02/30/2021", "2021-03-01", "3/1/2021", "03/01/21", "03-01-2021",
                                  "01/01/2300", "12/31/1969", "0a/01/2021"])
def test_a_malformed_or_out_of_range_trade_date_is_a_protocol_error(date: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decoder(DATED_FIELDNAMES, "T,20210301 10:00:00").decode(dated(date))
    assert date in caught.value.reason


def test_a_quote_only_line_does_not_need_a_valid_trade_date() -> None:
    """A quote's time is the heartbeat's; the trade fields of a quote-only line are not read."""
    (quote,) = decoder(DATED_FIELDNAMES, "T,20210301 10:00:00").decode(dated("", contents="ba"))
    assert quote.ts_ns == eastern_ns(2021, 3, 1, 10, 0, 0)


def published(conn: Level1Connection, *lines: str) -> list[Event]:
    batches: list[list[Event]] = []
    conn._sink = batches.append
    conn._handle_lines(list(lines), recv_ns=WALL_2026)
    return [event for batch in batches for event in batch if isinstance(event, (Trade, Quote))]


def test_a_reconnect_keeps_the_heartbeat_date_instead_of_the_local_clock() -> None:
    """Replaying 2021 on a 2026 machine: after a reconnect, lines before the first heartbeat stay in 2021."""
    conn = Level1Connection(FeedSettings(), lambda events: None, wall_clock=lambda: WALL_2026)
    conn._begin_socket()
    published(conn, DATED_FIELDNAMES, "T,20210301 15:59:58", dated("03/01/2021", "15:59:58.000001"))
    conn._begin_socket()  # a new socket: IQFeed's default field list until ours is selected again
    quote_only = "Q,XYZ,1.5200,50,15:59:58.000001,11,1050,1.4300,300,1.5200,400,,,,,ba,,"
    trade_default_layout = "Q,XYZ,1.5300,10,15:59:59.100000,11,1060,1.4300,300,1.5300,400,,,,,C,,"
    quote, trade = published(conn, quote_only, trade_default_layout)
    assert quote.ts_ns == eastern_ns(2021, 3, 1, 15, 59, 58)
    assert trade.ts_ns == eastern_ns(2021, 3, 1, 15, 59, 59, 100000)
    (dated_trade, _) = published(conn, DATED_FIELDNAMES, dated("03/02/2021", "04:00:00.000001"))
    assert dated_trade.ts_ns == eastern_ns(2021, 3, 2, 4, 0, 0, 1)
