"""The pure parts of the backfill: which history trades are missing, and the bounded record
of what the engine ingested (runtime/backfill.py)."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from events import Quote, Trade
from runtime.backfill import RecentTrades, missing_trades, trade_identity

SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
S = 1_000_000_000
EPOCH = datetime(1970, 1, 1)


def _trade(ts_ns: int, volume: int | None, price: float = 1.5, size: int = 100, symbol: str = "A") -> Trade:
    return Trade(symbol=symbol, price=price, size=size, ts_ns=ts_ns, total_volume=volume)


def _sample_trades() -> list[Trade]:
    trades = []
    for line in SAMPLE.read_text(encoding="latin-1").splitlines():
        if line[:2] == "20":
            f = line.split(",")
            ts_ns = (datetime.strptime(f[0], "%Y-%m-%d %H:%M:%S.%f") - EPOCH) // timedelta(microseconds=1) * 1000
            trades.append(_trade(ts_ns, int(f[3]), float(f[1]), int(f[2]), "SMPL"))
    return trades


@pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")
def test_real_prints_sharing_time_price_and_size_are_told_apart_by_total_volume():
    trades = _sample_trades()
    groups = Counter((t.ts_ns, t.price, t.size) for t in trades)
    assert len(trades) == 32_627
    assert sum(n - 1 for n in groups.values()) == 247  # prints a (ts, price, size) key would lose
    assert len({trade_identity(t) for t in trades}) == len(trades)
    # One print of each group reached storage live; the other prints of its group are missing.
    firsts = {}
    for trade in trades:
        firsts.setdefault((trade.ts_ns, trade.price, trade.size), trade)
    stored = [trade_identity(t) for t in firsts.values()]
    missing = missing_trades(trades, stored)
    assert len(missing) == 247
    assert not {trade_identity(t) for t in missing} & set(stored)


def test_trades_known_to_any_source_are_not_missing_and_history_order_is_kept():
    history = [_trade(i * S, 100 + i) for i in range(6)]
    stored = [trade_identity(history[0]), trade_identity(history[3])]
    recorded = [trade_identity(history[3]), trade_identity(history[5])]
    assert missing_trades(history, stored, recorded) == [history[1], history[2], history[4]]


def test_a_known_trade_without_total_volume_accounts_for_one_print_of_its_time_price_and_size():
    a, b, c = _trade(S, 500), _trade(S, 600), _trade(S, 700)
    unknown_volume = (S, -1, 1.5, 100)
    assert missing_trades([a, b, c], [unknown_volume]) == [b, c]
    # the same trade stored and recorded in memory is one trade, not two
    assert missing_trades([a, b, c], [unknown_volume], [unknown_volume]) == [b, c]
    assert missing_trades([a, b, c], [unknown_volume, unknown_volume]) == [c]


def test_recent_trades_hold_at_most_max_entries_and_count_what_leaves_for_room(caplog):
    recent = RecentTrades(max_entries=100, max_age_ns=3600 * S)
    trades = [_trade(i, i) for i in range(250)]
    with caplog.at_level(logging.WARNING, logger="runtime.backfill"):
        for start in range(0, 250, 10):
            recent.add([*trades[start:start + 10], Quote(symbol="A", bid=1, bid_size=1, ask=2, ask_size=1, ts_ns=0)],
                       now_ns=start)
    assert len(recent) == 100 and recent.evicted == 150
    assert set(recent.identities("A")) == {trade_identity(t) for t in trades[150:]}
    full = [r for r in caplog.records if r.getMessage().startswith("recent-trade record full")]
    assert len(full) == 1 and full[0].evicted == 10  # logged once a minute at most, with the running count


def test_recent_trades_forget_by_age_without_counting_it_as_a_loss():
    recent = RecentTrades(max_entries=1_000, max_age_ns=60 * S)
    recent.add([_trade(1, 1, symbol="OLD")], now_ns=0)
    recent.add([_trade(2, 2, symbol="NEW")], now_ns=30 * S)
    recent.add([_trade(3, 3, symbol="NEW")], now_ns=61 * S)
    assert recent.identities("OLD") == [] and len(recent.identities("NEW")) == 2
    assert len(recent) == 2 and recent.evicted == 0


def test_recent_trades_keep_an_identity_ingested_twice_until_both_copies_leave():
    recent = RecentTrades(max_entries=1_000, max_age_ns=60 * S)
    trade = _trade(5, 5)
    recent.add([trade], now_ns=0)
    recent.add([trade], now_ns=40 * S)
    recent.add([_trade(6, 6)], now_ns=70 * S)  # the first copy is older than a minute
    assert trade_identity(trade) in recent.identities("A")
    recent.add([_trade(7, 7)], now_ns=101 * S)
    assert trade_identity(trade) not in recent.identities("A")
