"""Starting many symbols through one start action: refusals are reported, and a limit ends the run."""

from __future__ import annotations

from bus.base import BusUnavailable
from collectors.iqfeed.protocol import InvalidSymbol, SymbolLimitReached
from runtime.bulk_start import start_many


def test_every_symbol_is_started_in_order_with_progress_reported():
    calls: list[str] = []
    progress: list[tuple[int, int]] = []
    outcome = start_many(calls.append, ["A", "B", "C"], lambda done, total: progress.append((done, total)))
    assert calls == ["A", "B", "C"] and outcome.started == ("A", "B", "C") and outcome.refused == {}
    assert progress == [(1, 3), (2, 3), (3, 3)]


def test_an_invalid_symbol_is_reported_and_the_others_still_start():
    def start(symbol: str) -> None:
        if symbol == "B":
            raise InvalidSymbol("symbol 'B' is no good")

    outcome = start_many(start, ["A", "B", "C"])
    assert outcome.started == ("A", "C") and outcome.refused == {"B": "symbol 'B' is no good"}
    assert not outcome.limit_reached


def test_the_watch_limit_ends_the_run_and_the_rest_are_reported_not_started_with_the_reason():
    calls: list[str] = []

    def start(symbol: str) -> None:
        calls.append(symbol)
        if len(calls) > 2:
            raise SymbolLimitReached("cannot start C: feed.watch_limit is 2")

    outcome = start_many(start, ["A", "B", "C", "D", "E"])
    assert calls == ["A", "B", "C"]  # D and E never tried
    assert outcome.started == ("A", "B") and outcome.limit_reached
    assert set(outcome.refused) == {"C", "D", "E"}
    assert all("feed.watch_limit is 2" in why for why in outcome.refused.values())


def test_an_unreachable_assignment_topic_ends_the_run():
    def start(symbol: str) -> None:
        raise BusUnavailable("Kafka did not take the change")

    outcome = start_many(start, ["A", "B"])
    assert outcome.started == () and not outcome.limit_reached
    assert outcome.refused == {s: "assignment topic unavailable: Kafka did not take the change" for s in "AB"}
