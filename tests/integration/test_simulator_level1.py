"""Level 1 over real sockets: watches, field sets, summaries, unknown symbols and the watch limit."""

from __future__ import annotations

import re

import pytest

from collectors.iqfeed.simulator.fields import ALL_UPDATE_FIELDS, DEFAULT_UPDATE_FIELDS, FUNDAMENTAL_FIELDS
from tests.integration.simulator_client import connect, fields, running

pytestmark = pytest.mark.timeout(30)
TIME = re.compile(r"\d{2}:\d{2}:\d{2}\.\d{6}")
PRICE = re.compile(r"\d+\.\d{4}")


def _market_lines(lines: list[str]) -> list[list[str]]:
    return [fields(x) for x in lines if x[:2] in ("Q,", "P,")]


def test_watch_sends_fundamentals_and_summary_then_updates_with_true_contents() -> None:
    with running(rate=2000) as sim, connect(sim.level1_port) as client:
        client.send("wAAPL")
        first = client.read_until(lambda x: x.startswith("P,"))
        fundamentals = fields(first[-2])
        assert fundamentals[:2] == ["F", "AAPL"] and len(fundamentals) == len(FUNDAMENTAL_FIELDS) + 2
        assert len(fields(first[-1])) == len(DEFAULT_UPDATE_FIELDS) + 2
        updates = [f for f in _market_lines(client.lines_for(1.5)) if f[0] == "Q"]
        assert len(updates) > 50 and {f[1] for f in updates} == {"AAPL"}
        previous = None
        trades = 0
        for f in updates:
            assert len(f) == 18 and f[-1] == ""
            contents = f[15]
            assert re.fullmatch(r"[CEO]?b?a?o?h?l?v?", contents) and contents
            bid, ask = float(f[7]), float(f[9])
            assert bid < ask and PRICE.fullmatch(f[7]) and PRICE.fullmatch(f[9])
            if contents[0] in "CEO":
                trades += 1
                assert contents.endswith("v") and TIME.fullmatch(f[4])
                assert re.fullmatch(r"(?:[0-9A-F]{2})+", f[16])
                if previous is not None:
                    assert int(f[6]) == int(previous[6]) + int(f[3])  # volume grows by the trade size
                    assert float(f[2]) in (float(previous[7]), float(previous[9]))  # at the bid or the ask
            elif previous is not None:
                assert f[2:7] == previous[2:7]  # a quote leaves the trade fields alone
            if previous is not None:
                if "b" not in contents:
                    assert f[7:9] == previous[7:9]  # no "b": the bid did not change
                if "a" not in contents:
                    assert f[9:11] == previous[9:11]
            previous = f
        assert trades > 5


def test_trades_only_watch_gets_only_trades_and_unwatch_stops_updates() -> None:
    with running(rate=2000) as sim, connect(sim.level1_port) as client:
        client.send("tMSFT")
        client.expect("P,MSFT,")
        updates = [f for f in _market_lines(client.lines_for(1.0)) if f[0] == "Q"]
        assert updates and all(f[15][0] in "CEO" for f in updates)
        client.send("rMSFT")
        client.drain(0.3)
        assert not _market_lines(client.lines_for(0.6))


def test_unknown_symbols_get_n_and_watches_are_listed_and_cleared() -> None:
    with running(rate=0) as sim, connect(sim.level1_port) as client:
        client.send("wNOPE")
        assert client.expect("n,") == "n,NOPE"
        client.send("wAAPL", "tMSFT", "S,REQUEST WATCHES")
        watches = fields(client.expect("S,WATCHES"))
        assert sorted(watches[2:]) == ["AAPL", "MSFT"]
        client.send("S,UNWATCH ALL", "S,REQUEST WATCHES")
        assert client.expect("S,WATCHES") == "S,WATCHES"
        assert sim.stats.watched_symbols == 0


def test_watch_limit_answers_symbol_limit_reached() -> None:
    with running(rate=0, symbols=("AAA", "BBB", "CCC"), watch_limit=2) as sim, connect(sim.level1_port) as a, \
            connect(sim.level1_port) as b:
        a.send("wAAA", "wBBB")
        a.expect("P,BBB")
        b.send("wAAA")  # already watched by IQConnect: no new symbol
        b.expect("P,AAA")
        b.send("wCCC")
        assert b.expect("S,SYMBOL") == "S,SYMBOL LIMIT REACHED,CCC"
        a.send("rBBB")
        a.drain(0.2)
        b.send("wCCC")
        assert b.expect("P,CCC").startswith("P,CCC,")


def test_selected_fields_shape_updates_and_unknown_fields_are_refused() -> None:
    chosen = ["Bid Time", "Ask Time", "TickID", "Number of Trades Today", "VWAP", "Most Recent Trade Date",
              "Most Recent Trade Aggressor", "Bid", "Ask", "Most Recent Trade", "Message Contents"]
    with running(rate=2000) as sim, connect(sim.level1_port) as client:
        client.send("S,SELECT UPDATE FIELDS," + ",".join(chosen))
        assert client.expect("S,CURRENT UPDATE FIELDNAMES") == "S,CURRENT UPDATE FIELDNAMES,Symbol," + ",".join(chosen)
        client.send("S,REQUEST CURRENT UPDATE FIELDNAMES")
        assert fields(client.expect("S,CURRENT UPDATE FIELDNAMES"))[2:] == ["Symbol", *chosen]
        client.send("S,REQUEST ALL UPDATE FIELDNAMES", "S,REQUEST FUNDAMENTAL FIELDNAMES")
        assert fields(client.expect("S,UPDATE FIELDNAMES"))[2:] == list(ALL_UPDATE_FIELDS)
        assert fields(client.expect("S,FUNDAMENTAL FIELDNAMES"))[2:] == list(FUNDAMENTAL_FIELDS)
        client.send("wAAPL")
        at = {name: i + 2 for i, name in enumerate(chosen)}
        updates = [f for f in _market_lines(client.lines_for(1.2)) if f[0] == "Q"]
        trades = [f for f in updates if f[at["Message Contents"]][:1] in ("C", "E", "O")]
        assert updates and trades and all(len(f) == len(chosen) + 3 for f in updates)
        for f in trades:
            assert TIME.fullmatch(f[at["Bid Time"]]) and TIME.fullmatch(f[at["Ask Time"]])
            assert int(f[at["TickID"]]) > 0 and int(f[at["Number of Trades Today"]]) > 0
            assert PRICE.fullmatch(f[at["VWAP"]]) and re.fullmatch(r"\d{2}/\d{2}/\d{4}", f[at["Most Recent Trade Date"]])
            assert f[at["Most Recent Trade Aggressor"]] in ("1", "2")
        tick_ids = [int(f[at["TickID"]]) for f in trades]
        assert tick_ids == sorted(tick_ids) and len(set(tick_ids)) == len(tick_ids)
        client.send("S,SELECT UPDATE FIELDS,Bid,Bid Prize")
        assert "Bid Prize" in client.expect("E,")


def test_refresh_sends_fundamentals_and_summary_now() -> None:
    with running(rate=0) as sim, connect(sim.level1_port) as client:
        client.send("fMSFT")
        assert client.read_line().startswith("F,MSFT,")
        assert client.read_line().startswith("P,MSFT,")
        client.send("fNOPE")
        assert client.read_line() == "n,NOPE"


def test_two_clients_with_different_field_sets_see_the_same_events() -> None:
    with running(rate=1500, symbols=("AAPL",)) as sim, connect(sim.level1_port) as plain, \
            connect(sim.level1_port) as narrow:
        narrow.send("S,SELECT UPDATE FIELDS,Most Recent Trade,Bid,Ask,Message Contents")
        narrow.expect("S,CURRENT UPDATE FIELDNAMES")
        plain.send("wAAPL")
        narrow.send("wAAPL")
        plain.expect("P,AAPL")
        narrow.expect("P,AAPL")
        plain_lines, narrow_lines = plain.lines_for(0.7), narrow.lines_for(0.1)
        sim.faults.stall(2.0)  # both streams stop after the same event
        wide = [f for f in _market_lines(plain_lines + plain.drain(0.4)) if f[0] == "Q"]
        thin = [f for f in _market_lines(narrow_lines + narrow.drain(0.4)) if f[0] == "Q"]
        tail = min(len(wide), len(thin), 20)
        assert tail > 3
        assert [(f[2], f[7], f[9], f[15]) for f in wide[-tail:]] == [tuple(f[2:6]) for f in thin[-tail:]]
