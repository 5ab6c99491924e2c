"""Level 2 over real sockets: order, price-level and market-maker depth agree with each other and Level 1."""

from __future__ import annotations

import pytest

from tests.integration.simulator_client import connect, fields, running

pytestmark = pytest.mark.timeout(30)


class Depth:
    """A client's copy of the three depth views, rebuilt from the lines alone."""

    def __init__(self) -> None:
        self.orders: dict[str, tuple[str, float, int]] = {}
        self.levels: dict[tuple[str, float], tuple[int, int]] = {}
        self.makers: dict[str, tuple[float, float, int, int]] = {}

    def apply(self, line: str) -> None:
        f = fields(line)
        kind = f[0]
        if kind in ("6", "3", "4"):
            assert len(f) == 12 and f[3] == "" and f[4] in ("B", "A") and f[8] == "2" and f[-1] == ""
            assert (kind == "4") == (f[2] in self.orders) or kind == "6"
            self.orders[f[2]] = (f[4], float(f[5]), int(f[6]))
        elif kind == "5":
            assert len(f) == 8 and f[3] == ""
            del self.orders[f[2]]
        elif kind in ("7", "8"):
            assert len(f) == 10
            self.levels[(f[2], float(f[3]))] = (int(f[4]), int(f[5]))
        elif kind == "9":
            assert len(f) == 7
            del self.levels[(f[2], float(f[3]))]
        elif kind in ("Z", "2"):
            assert len(f) == 15 and f[11] in ("T", "F") and f[12] in ("T", "F")
            self.makers[f[2]] = (float(f[3]), float(f[4]), int(f[5]), int(f[6]))
        elif kind == "0":
            assert len(f) == 12 and f[2] == "" and f[3]  # market-maker entry: MMID set, no order id

    def best(self, side: str) -> tuple[float, int]:
        prices = [p for s, p in self.levels if s == side]
        top = max(prices) if side == "B" else min(prices)
        return top, self.levels[(side, top)][0]


def test_depth_views_and_level1_quote_agree() -> None:
    with running(rate=1500, symbols=("AAPL",)) as sim, connect(sim.level1_port) as l1, \
            connect(sim.level2_port) as l2:
        l2.send("WPL,AAPL", "WOR,AAPL", "wAAPL")
        l1.send("wAAPL")
        l1.expect("P,AAPL")
        l2_lines = l2.lines_for(1.5)
        l1_lines = l1.lines_for(0.1)
        sim.faults.stall(2.5)  # freeze, then read what was sent before the freeze
        l2_lines += l2.drain(0.4)
        l1_lines += l1.drain(0.4)
        depth = Depth()
        kinds = set()
        for line in l2_lines:
            if line[:2] in ("T,", "S,"):
                continue
            kinds.add(line[0])
            depth.apply(line)
        assert {"0", "3", "4", "5", "6", "7", "8", "9", "Z", "2"} <= kinds
        quote = [fields(x) for x in l1_lines if x.startswith(("Q,AAPL", "P,AAPL"))][-1]
        bid, bid_size, ask, ask_size = float(quote[7]), int(quote[8]), float(quote[9]), int(quote[10])
        assert depth.best("B") == (bid, bid_size)
        assert depth.best("A") == (ask, ask_size)
        from_orders: dict[tuple[str, float], tuple[int, int]] = {}
        for side, price, size in depth.orders.values():
            total, count = from_orders.get((side, price), (0, 0))
            from_orders[(side, price)] = (total + size, count + 1)
        assert from_orders == depth.levels
        assert max(m[0] for m in depth.makers.values() if m[2]) == bid
        assert min(m[1] for m in depth.makers.values() if m[3]) == ask
        assert sum(m[2] for m in depth.makers.values() if m[0] == bid) == bid_size


def test_order_book_watches_need_protocol_62() -> None:
    with running(rate=0) as sim, connect(sim.level2_port, protocol="6.1") as client:
        client.send("WPL,AAPL")
        assert client.expect("E,").startswith("E,WPL needs protocol 6.2")
        client.send("wAAPL")  # market-maker depth is older than 6.2
        assert client.expect("Z,AAPL,")


def test_unwatch_unknown_symbols_and_market_maker_names() -> None:
    with running(rate=1500, symbols=("AAPL",)) as sim, connect(sim.level2_port) as client:
        client.send("WPL,NOPE")
        assert client.expect("n,") == "n,NOPE"
        client.send("WPL,AAPL,extra")
        assert client.expect("E,") == "E,Invalid number of parameters.,"
        client.send("mNSDQ", "mWHO")
        assert client.expect("M,") == "M,NSDQ,Nasdaq Execution Services"
        assert client.expect("E,").startswith("E,Unknown market maker WHO")
        client.send("WPL,AAPL")
        client.expect("7,AAPL,")
        assert any(x.startswith(("8,", "9,")) for x in client.lines_for(0.8))
        client.send("RPL,AAPL")
        client.drain(0.3)
        assert not [x for x in client.lines_for(0.6) if x[:2] in ("7,", "8,", "9,")]


def test_after_a_dtn_reconnect_books_are_cleared_and_resent() -> None:
    with running(rate=500, symbols=("AAPL",)) as sim, connect(sim.level2_port) as client:
        client.send("WOR,AAPL")
        client.expect("6,AAPL,")
        sim.faults.server_disconnect()
        client.expect("S,SERVER DISCONNECTED")
        assert client.read_line() == "S,SERVER RECONNECT FAILED"
        sim.faults.server_reconnect()
        lines = client.read_until(lambda x: x.startswith("6,AAPL,"))
        assert lines[-4:-1] == ["S,SERVER CONNECTED", "S,CLEAR DEPTH,AAPL,B,", "S,CLEAR DEPTH,AAPL,A,"]
