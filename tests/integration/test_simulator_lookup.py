"""Lookup port over real sockets: history answers from the streamed market, framing and rate limit."""

from __future__ import annotations

import time

import pytest

from collectors.iqfeed.simulator.lookup import RATE_LIMIT_TEXT
from tests.integration.simulator_client import connect, fields, running

pytestmark = pytest.mark.timeout(30)


def _request(client, line: str, end: str) -> list[str]:  # type: ignore[no-untyped-def]
    client.send(line)
    return client.read_until(lambda x: x == end)


def test_tick_history_holds_every_trade_the_stream_sent() -> None:
    with running(rate=1500, symbols=("AAPL",)) as sim, connect(sim.level1_port) as l1, \
            connect(sim.lookup_port) as lookup:
        l1.send("wAAPL")
        l1.expect("P,AAPL")
        streamed = {
            (f[4], f[2], f[3], f[6])  # time, price, size, total volume
            for f in (fields(x) for x in l1.lines_for(1.0))
            if f[0] == "Q" and f[15][:1] in ("C", "E", "O")
        }
        rows = _request(lookup, "HTX,AAPL,0,1,all", "all,!ENDMSG!,")[:-1]
        history = [fields(r) for r in rows]
        assert all(f[:2] == ["all", "LH"] and len(f) == 15 and f[-1] == "" for f in history)
        assert [f[2] for f in history] == sorted(f[2] for f in history)  # direction 1: oldest first
        recorded = {(f[2][11:], f[3], f[4], f[5]) for f in history}
        assert len(streamed) > 20 and streamed <= recorded
        last_day = [f for f in history if f[2][:10] == history[-1][2][:10]]
        day_volume = sum(int(f[4]) for f in last_day)
        daily = _request(lookup, "HDX,AAPL,1,1,d", "d,!ENDMSG!,")
        assert fields(daily[0])[:3] == ["d", "LH", history[-1][2][:10]]
        assert int(fields(daily[0])[7]) >= day_volume  # the market kept trading after the HTX


def test_interval_bars_agree_with_the_ticks() -> None:
    with running(rate=3000, symbols=("AAPL",)) as sim, connect(sim.lookup_port) as lookup:
        time.sleep(0.8)  # let the market trade
        sim.faults.stall(0.5)  # requests made while frozen are answered together: same ticks
        lookup.send("S,SET PROTOCOL,6.1")  # deferred until the stall ends, like every request below
        lookup.send("HTX,AAPL,0,1,t", "HIX,AAPL,1,0,1,b")
        ticks = [fields(x) for x in lookup.read_until(lambda x: x == "t,!ENDMSG!,", timeout=6)[:-1]]
        bars = [fields(x) for x in lookup.read_until(lambda x: x == "b,!ENDMSG!,")[:-1]]
        ticks = [f for f in ticks if f[0] == "t"]
        assert bars and all(f[1][:4].isdigit() for f in bars)  # 6.1: no LH prefix
        by_second: dict[str, list[list[str]]] = {}
        for f in ticks:
            by_second.setdefault(f[1][:19], []).append(f)
        assert len(bars) == len(by_second)
        for bar, group in zip(bars, by_second.values()):
            prices = [float(f[2]) for f in group]
            assert (float(bar[2]), float(bar[3]), float(bar[4]), float(bar[5])) == (
                max(prices), min(prices), prices[0], prices[-1])
            assert (int(bar[6]), int(bar[7]), int(bar[8])) == (int(group[-1][4]), sum(int(f[3]) for f in group),
                                                              len(group))


def test_framing_errors_and_no_data() -> None:
    with running(rate=0) as sim, connect(sim.lookup_port) as lookup:
        assert _request(lookup, "HTX,AAPL,10,1,q1", "q1,!ENDMSG!,") == ["q1,E,!NO_DATA!,", "q1,!ENDMSG!,"]
        assert _request(lookup, "HTX,AAPL,10", "!ENDMSG!,") == ["E,!NO_DATA!,,", "!ENDMSG!,"]
        assert _request(lookup, "HTX,ZZZZ,10,1,q2", "q2,!ENDMSG!,")[0] == "q2,E,Invalid symbol.,"
        lookup.send("HTX,AAPL")
        assert lookup.read_line() == "E,Invalid number of parameters.,"
        lookup.send("HQX,AAPL,1")
        assert lookup.read_line() == "E,!SYNTAX_ERROR!,"


def test_requests_over_the_rate_limit_are_refused() -> None:
    with running(rate=0) as sim, connect(sim.lookup_port) as lookup:
        lookup.send(*[f"HDX,AAPL,1,1,r{i}" for i in range(90)])
        replies = [lookup.read_line() for _ in range(180)]
        refused = [x for x in replies if x.endswith(f",E,{RATE_LIMIT_TEXT},")]
        answered = [x for x in replies if x.endswith(",E,!NO_DATA!,")]
        assert len(answered) + len(refused) == 90 and len(answered) >= 50 and len(refused) >= 30
        assert sim.stats.lookup_rate_limited == len(refused)
