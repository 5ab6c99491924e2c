"""Loading IQFeed tick-history files for replay."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from collectors.iqfeed.simulator.history import tick_row
from collectors.iqfeed.simulator.market import ASK, BID, TRADE, SymbolState
from collectors.iqfeed.simulator.replay import (
    ReplayFormatError,
    ReplayMarket,
    load_ticks,
    shift_to_day,
    tick_precision,
)
from collectors.iqfeed.simulator.wire import TimeText, day_of

pytestmark = pytest.mark.timeout(30)

SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")


@needs_sample
def test_the_shared_sample_loads_every_tick_in_order() -> None:
    ticks = load_ticks(SAMPLE)
    # 32,628 lines: 32,627 tick rows and the closing !ENDMSG! line
    assert len(ticks) == 32_627 == len(SAMPLE.read_text(encoding="latin-1").splitlines()) - 1
    first, last = ticks[0], ticks[-1]
    assert (first.price, first.size, first.total_volume, first.bid, first.ask) == (15200, 1000, 1000, 15600, 15700)
    assert (first.tick_id, first.basis, first.market_center, first.conditions, first.day_code) == (1, "E", 11, "1747", 1)
    assert (last.price, last.size, last.basis, last.conditions) == (15400, 238, "E", "17")
    assert all(a.time_us <= b.time_us for a, b in zip(ticks, ticks[1:]))
    assert any(t.price % 100 for t in ticks)  # sub-penny (midpoint) trades...
    assert tick_precision(ticks) == 4  # ...so depth prints four decimals
    assert tick_precision(ticks[:5]) == 2


@needs_sample
def test_rows_format_back_to_the_exact_sample_text() -> None:
    text = TimeText()
    lines = SAMPLE.read_text(encoding="latin-1").splitlines()
    ticks = load_ticks(SAMPLE)
    assert [tick_row(t, text) for t in ticks] == lines[:-1]  # the last line is !ENDMSG!


def test_request_id_and_lh_prefixed_captures_load_too(tmp_path: Path) -> None:
    row = "2021-03-01 04:00:00.028010,1.5200,1000,1000,1.5600,1.5700,1,E,11,1747,0,1,"
    path = tmp_path / "mixed.csv"
    path.write_text(f"req7,LH,{row}\r\nLH,{row}\r\nreq7,{row}\n{row}\r\n\r\nreq7,!ENDMSG!,\r\n")
    ticks = load_ticks(path)
    assert len(ticks) == 4 and len(set(ticks)) == 1


def test_a_bad_row_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("2021-03-01 04:00:00.028010,1.5200,1000,1000,1.5600,1.5700,1,E,11,1747,0,1,\r\n"
                    "2021-03-01 04:00:01.000000,notaprice,1,1,1,1,1,E,11,17,0,1,\r\n")
    with pytest.raises(ReplayFormatError, match=r"bad.csv:2"):
        load_ticks(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("!ENDMSG!,\r\n")
    with pytest.raises(ReplayFormatError, match="no ticks"):
        load_ticks(empty)


@needs_sample
def test_shifting_moves_whole_days_and_keeps_times_of_day() -> None:
    ticks = load_ticks(SAMPLE)
    shifted = shift_to_day(ticks, date(2030, 6, 10))
    assert day_of(shifted[0].time_us) == date(2030, 6, 10)
    assert day_of(shifted[-1].time_us) == date(2030, 6, 12)
    assert shifted[0].time_us % 86_400_000_000 == ticks[0].time_us % 86_400_000_000
    assert shifted[-1].day_code == 12 and shifted[0].price == ticks[0].price


@needs_sample
def test_replayed_ticks_become_level1_trades_with_the_files_values() -> None:
    ticks = load_ticks(SAMPLE)[:200]
    st = SymbolState("XYZ", 0, TimeText(), 1000)
    market = ReplayMarket(7)
    for tick in ticks:
        flags = market.apply(st, tick)
        assert flags & TRADE
        assert (st.last, st.last_size, st.volume, st.bid, st.ask) == (tick.price, tick.size, tick.total_volume,
                                                                     tick.bid, tick.ask)
        assert st.f_contents[0] == tick.basis and st.f_conds == tick.conditions
        assert ("b" in st.f_contents) == bool(flags & BID) and ("a" in st.f_contents) == bool(flags & ASK)
    assert list(st.history) == ticks
