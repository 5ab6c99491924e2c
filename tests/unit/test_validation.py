"""Validation rules: each rule fires on its own case, counts add up, gaps and duplicates are exact."""

from __future__ import annotations

import pytest

from events import Depth, Heartbeat, HistoryTick, Quote, Trade
from runtime.validation import RULES, Tolerances, Validator, check_event

pytestmark = pytest.mark.timeout(10)

S = 1_000_000_000
T = 1_795_000_000_000_000_000


def trade(seq: int = 1, *, price: float = 10.0, size: int = 100, ts: int = T, recv: int = T + 1_000_000, **kw) -> Trade:
    return Trade(symbol="AAPL", price=price, size=size, ts_ns=ts, source="s", seq=seq, recv_ns=recv, **kw)


def quote(seq: int = 1, *, bid: float | None = 9.99, ask: float | None = 10.01, bid_size: int | None = 100) -> Quote:
    return Quote(symbol="AAPL", bid=bid, bid_size=bid_size, ask=ask, ask_size=100, ts_ns=T, source="s", seq=seq,
                 recv_ns=T + 1_000)


def rules(event) -> list[str]:
    return [violation.rule for violation in check_event(event)]


def test_clean_events_pass_every_rule():
    assert rules(trade()) == [] and rules(quote()) == []
    assert rules(quote(bid=10.0, ask=10.0)) == []  # locked is not crossed
    assert rules(quote(bid=0.0, ask=0.05)) == []  # no bid (far out-of-the-money option) is normal
    assert rules(Depth(symbol="ES", action="delete", side="bid", price=None, ts_ns=0, source="s", seq=1)) == []


@pytest.mark.parametrize(
    ("event", "rule"),
    [
        (trade(price=0.0), "price_positive"),
        (trade(price=-1.5), "price_positive"),
        (trade(price=float("nan")), "price_positive"),
        (quote(bid=-0.01), "price_positive"),
        (Depth(symbol="ES", action="add", side="ask", price=0.0, size=1, ts_ns=T, recv_ns=T, source="s", seq=1),
         "price_positive"),
        (HistoryTick(symbol="A", ts_ns=T, price=0.0, size=1, total_volume=1, bid=None, ask=None, tick_id=1, basis="C",
                     market_center=None), "price_positive"),
        (trade(size=-1), "size_non_negative"),
        (quote(bid_size=-100), "size_non_negative"),
        (quote(bid=10.02, ask=10.01), "crossed_quote"),
        (trade(ts=0), "ts_missing"),
        (trade(recv=0), "ts_missing"),
        (trade(ts=T + 3 * S, recv=T), "ts_future"),
        (trade(ts=T, recv=T + 31 * S), "ts_late"),
    ],
)
def test_each_rule_fires_on_its_own_case(event, rule):
    assert rules(event) == [rule]


def test_backfilled_trades_are_old_by_design_and_not_late():
    assert rules(trade(ts=T, recv=T + 3600 * S, backfilled=True)) == []


def test_tolerances_are_configurable():
    late = trade(ts=T, recv=T + 5 * S)
    assert rules(late) == []
    assert [v.rule for v in check_event(late, Tolerances(late_ns=1 * S))] == ["ts_late"]


def test_seq_gaps_duplicates_and_reorders_are_counted_exactly_per_source():
    validator = Validator()
    seqs = [1, 2, 3, 7, 8, 3, 5, 9, 12]  # gap 4..6, dup 3, late 5 fills part of it, gap 10..11
    validator.feed([trade(seq) for seq in seqs])
    validator.feed([Heartbeat(ts_ns=T, source="other", seq=s) for s in (100, 101, 101)])

    counts = validator.counts
    assert counts["seq_gap"] == 2 and counts["seq_duplicate"] == 2 and counts["seq_reordered"] == 1
    assert validator.missing == 4  # 4, 6, 10, 11
    assert [(g.source, g.first, g.last) for g in validator.gaps()] == [("s", 10, 11), ("s", 6, 6), ("s", 4, 4)]
    assert validator.checked == 12


def test_counts_cover_every_rule_and_recent_keeps_the_last_violations_only():
    validator = Validator(recent=3)
    found = validator.feed([trade(seq, price=-seq) for seq in range(1, 11)])
    assert len(found) == 10 and set(validator.counts) == set(RULES)
    assert validator.counts["price_positive"] == 10
    assert [v.seq for v in validator.recent] == [8, 9, 10]
    snapshot = validator.snapshot()
    assert snapshot.checked == 10 and snapshot.counts["price_positive"] == 10 and len(snapshot.recent) == 3


def test_gap_memory_is_bounded_per_source_and_the_loss_stays_counted():
    validator = Validator(max_gaps_per_source=2)
    validator.feed([trade(seq) for seq in (1, 3, 5, 7, 9)])
    assert validator.counts["seq_gap"] == 4 and validator.missing == 4
    assert [(g.first, g.last) for g in validator.gaps()] == [(8, 8), (6, 6)]
    validator.feed([trade(2)])  # its gap was forgotten: it can no longer be told from a duplicate
    assert validator.counts["seq_duplicate"] == 1
