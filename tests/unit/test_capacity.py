"""Capacity: an instance over its watch limit watches critical symbols first and keeps what it watches;
the fleet is short, or one failure away from short, by its responsive collectors' limits."""

from __future__ import annotations

from runtime.capacity import assess_capacity, plan_watches
from runtime.symbols import SymbolSpec


def spec(symbol: str, *, critical: bool = False, level1: bool = True) -> SymbolSpec:
    return SymbolSpec(symbol, level1, False, 0.0, 1, "test", critical)


def test_a_share_within_the_limit_is_watched_whole():
    plan = plan_watches([spec("B"), spec("A"), spec("C", level1=False)], set(), limit=5)
    assert plan.watch == ("A", "B") and plan.over_limit == {}


def test_over_the_limit_critical_symbols_come_first_even_over_ones_already_watched():
    wanted = [spec("A"), spec("B"), spec("C"), spec("Z", critical=True)]
    plan = plan_watches(wanted, {"A", "B", "C"}, limit=3)
    assert plan.watch == ("Z", "A", "B")
    assert list(plan.over_limit) == ["C"] and "over feed.watch_limit (3): 4 symbols" in plan.over_limit["C"]


def test_over_the_limit_symbols_already_watched_keep_their_watch_rather_than_churn():
    plan = plan_watches([spec(s) for s in "ABCDE"], {"D", "E"}, limit=3)
    assert plan.watch == ("D", "E", "A") and set(plan.over_limit) == {"B", "C"}


def test_fleet_capacity_is_short_now_or_one_failure_away():
    healthy = assess_capacity(800, [500, 500, 500])
    assert (healthy.capacity, healthy.after_one_loss, healthy.short_by, healthy.short_after_one_loss_by) == \
        (1500, 1000, 0, 0)
    fragile = assess_capacity(800, [500, 500])
    assert fragile.short_by == 0 and fragile.short_after_one_loss_by == 300
    short = assess_capacity(800, [500])
    assert short.short_by == 300 and short.after_one_loss is None and short.short_after_one_loss_by == 0
    assert assess_capacity(10, []).capacity == 0 and assess_capacity(10, []).load == 0.0
    assert assess_capacity(250, [500, 100]).after_one_loss == 100  # losing the largest is the worst case
