"""The simulator's trade log without sockets: rows, times, the reader and the recording history."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from collectors.iqfeed.simulator.market import Tick
from collectors.iqfeed.simulator.trade_log import (
    TRADE_LOG_HEADER,
    EasternToUtc,
    LoggedTrade,
    TradeLog,
    TradeLogError,
    format_rows,
    parse_row,
    read_trade_log,
)
from collectors.iqfeed.simulator.wire import EASTERN, parse_history_timestamp
from tests.unit.file_size_limit import file_size_limit, run_in_child

pytestmark = pytest.mark.timeout(30)


def _tick(when: str, price: int = 1_234_500, size: int = 100, volume: int = 5_300, tick_id: int = 77,
          conditions: str = "3D87", basis: str = "C") -> Tick:
    return Tick(parse_history_timestamp(when), price, size, volume, price - 100, price + 100, tick_id, basis, 19,
                conditions, 1, 1)


def _utc_ns(when: str) -> int:
    local = datetime.fromisoformat(when).replace(tzinfo=EASTERN)
    return (local - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) * 1000


def test_a_row_carries_the_trade_as_the_wire_shows_it_and_reads_back() -> None:
    to_utc = EasternToUtc()
    row = format_rows("AAPL", [_tick("2021-03-01 10:00:00.123456")], to_utc)
    assert row == f"AAPL,{_utc_ns('2021-03-01 10:00:00.123456')},123.4500,100,5300,77,19,3D87,C\n"
    assert parse_row(row.rstrip("\n")) == LoggedTrade(
        "AAPL", _utc_ns("2021-03-01 10:00:00.123456"), 123.45, 100, 5300, 77, 19, "3D87", "C")


@pytest.mark.parametrize("when", [
    "2024-03-10 01:59:59.999999",  # EST, just before the clocks go forward
    "2024-03-10 03:00:00.000001",  # EDT
    "2024-07-01 12:00:00.5",
    "2024-11-03 00:59:59.999999",  # EDT
    "2024-11-03 01:30:00",  # the repeated hour: its first occurrence (EDT), as IQFeed clients read it
    "2024-11-03 02:00:00",  # EST
    "2024-12-31 23:59:59.999999",
])
def test_eastern_wall_times_become_utc_across_dst_changes(when: str) -> None:
    to_utc = EasternToUtc()
    local_us = parse_history_timestamp(when)
    assert to_utc(local_us) == _utc_ns(when)
    assert to_utc(local_us) == _utc_ns(when)  # from the cache, the same


def test_reader_returns_every_row_in_order(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    to_utc = EasternToUtc()
    ticks = [_tick(f"2021-03-01 10:00:0{i}", volume=100 * (i + 1), tick_id=i, conditions="") for i in range(5)]
    path.write_text(TRADE_LOG_HEADER + format_rows("MSFT", ticks, to_utc))
    rows = read_trade_log(path)
    assert [(r.symbol, r.total_volume, r.tick_id, r.conditions) for r in rows] == [
        ("MSFT", 100 * (i + 1), i, "") for i in range(5)]


@pytest.mark.parametrize(("text", "named"), [
    ("time,price\n", "not a simulator trade log"),
    (TRADE_LOG_HEADER + "AAPL,1,1.0000,100\n", ":2:"),
    (TRADE_LOG_HEADER + "AAPL,1,1.0000,100,100,1,19,01,C\nAAPL,x,1.0000,100,100,1,19,01,C\n", ":3:"),
    (TRADE_LOG_HEADER + "AAPL,1,1.0000,100,100,1,19,01,Q\n", "basis"),
])
def test_reader_rejects_what_is_not_a_trade_log_naming_the_line(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TradeLogError, match=named):
        read_trade_log(path)


def test_a_last_row_cut_off_by_a_crash_is_skipped_with_a_warning(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cut.csv"
    path.write_text(TRADE_LOG_HEADER + "AAPL,1,1.0000,100,100,1,19,01,C\nAAPL,2,1.00")
    with caplog.at_level(logging.WARNING):
        assert [r.ts_ns for r in read_trade_log(path)] == [1]
    assert "cut off" in caplog.text


def test_history_keeps_its_bound_while_the_log_gets_every_trade(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    log = TradeLog(path)
    log.open()
    history = log.history("AAPL", maxlen=3)
    ticks = [_tick(f"2021-03-01 10:00:0{i}", volume=100 * (i + 1)) for i in range(6)]
    for tick in ticks:
        history.append(tick)
    assert list(history) == ticks[-3:] and history.maxlen == 3
    assert log.flush() == 6
    log.close()
    assert [r.total_volume for r in read_trade_log(path)] == [t.total_volume for t in ticks]


def test_a_second_run_appends_under_the_one_header_and_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    for volume in (100, 200):
        log = TradeLog(path)
        log.open()
        log.history("AAPL", maxlen=10).append(_tick("2021-03-01 10:00:00", volume=volume))
        log.close()
    assert path.read_text().count(TRADE_LOG_HEADER) == 1
    assert [r.total_volume for r in read_trade_log(path)] == [100, 200]
    other = tmp_path / "other.csv"
    other.write_text("something,else\n")
    with pytest.raises(TradeLogError, match="not a simulator trade log"):
        TradeLog(other).open()


def test_a_full_disk_loses_a_whole_write_counted_and_logged_never_half_a_row(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"

    def in_child() -> dict:
        log = TradeLog(path)
        log.open()
        history = log.history("AAPL", maxlen=100)
        with file_size_limit(len(TRADE_LOG_HEADER) + 150):  # room for two rows and part of a third
            for i in range(5):
                history.append(_tick(f"2021-03-01 10:00:0{i}", volume=100 * (i + 1)))
            lost = log.flush()
        history.append(_tick("2021-03-01 10:00:09", volume=900))
        written = log.flush()
        log.close()
        return {"lost": lost, "written": written, "failed": log.failed, "total": log.written}

    result = run_in_child(in_child, timeout_s=20)
    assert result == {"lost": 0, "written": 1, "failed": 5, "total": 1}
    assert [r.total_volume for r in read_trade_log(path)] == [900]  # the failed write left nothing behind
