"""Watch limit per Level 1 connection over real sockets: each connection as its own IQConnect.

One simulator, one shared market; with ``watch_limit_per_connection`` every Level 1
connection may watch ``watch_limit`` distinct symbols of its own, as a fleet of
collectors would, each with its own IQConnect.
"""

from __future__ import annotations

import pytest

from collectors.iqfeed.simulator.config import generated_symbols
from tests.integration.simulator_client import LineClient, connect, fields, running

pytestmark = pytest.mark.timeout(90)
LIMIT = 500


def _trades(lines: list[str], symbol: str) -> list[tuple[str, str, str, str]]:
    """(time, price, size, total volume) of each ``Q`` trade of ``symbol``."""
    return [
        (f[4], f[2], f[3], f[6]) for f in (fields(x) for x in lines)
        if f[0] == "Q" and f[1] == symbol and f[15][:1] in ("C", "E", "O")
    ]


def _stats(client: LineClient) -> list[str]:
    client.send("S,REQUEST STATS")
    return fields(client.expect("S,STATS,"))


def test_three_connections_watch_500_symbols_each_and_all_get_data() -> None:
    names = generated_symbols(3 * LIMIT + 10)
    shares = [names[i * LIMIT:(i + 1) * LIMIT] for i in range(3)]
    with running(symbols=(), symbol_count=len(names), rate=30_000, watch_limit=LIMIT, watch_limit_per_connection=True) as sim:
        clients = [connect(sim.level1_port, timeout=20) for _ in range(3)]
        try:
            for client, share in zip(clients, shares):
                client.send(*(f"w{s}" for s in share))
            for client, share in zip(clients, shares):
                lines = client.read_until(lambda x: x.startswith(f"P,{share[-1]},"), timeout=30)
                assert not [x for x in lines if x.startswith("S,SYMBOL LIMIT REACHED")]
                assert {fields(x)[1] for x in lines if x.startswith("P,")} == set(share)
            assert sim.stats.watched_symbols == 3 * LIMIT
            for client, share in zip(clients, shares):
                quoted = {fields(x)[1] for x in client.lines_for(3.0) if x.startswith("Q,")}
                assert quoted <= set(share)  # only its own symbols
                assert len(quoted) > LIMIT * 0.8  # the stream serves every connection
                stats = _stats(client)
                assert stats[4:6] == [str(LIMIT), str(LIMIT)]  # Max symbols, Symbols: its own IQConnect
        finally:
            for client in clients:
                client.close()


def test_the_501st_symbol_on_one_connection_is_refused_while_another_connection_takes_it() -> None:
    names = generated_symbols(LIMIT + 2)
    with running(symbols=(), symbol_count=len(names), rate=0, watch_limit=LIMIT, watch_limit_per_connection=True) as sim, \
            connect(sim.level1_port, timeout=20) as full, connect(sim.level1_port) as other:
        full.send(*(f"w{s}" for s in names[:LIMIT]))
        full.expect(f"P,{names[LIMIT - 1]},", timeout=30)
        full.send(f"w{names[LIMIT]}")
        assert full.expect("S,SYMBOL") == f"S,SYMBOL LIMIT REACHED,{names[LIMIT]}"
        full.send(f"t{names[0]}")  # a symbol it already watches is no new symbol
        assert full.expect("P,").startswith(f"P,{names[0]},")
        other.send(f"w{names[LIMIT]}", f"w{names[0]}")
        assert other.expect("P,").startswith(f"P,{names[LIMIT]},")
        assert other.expect("P,").startswith(f"P,{names[0]},")
        assert _stats(other)[4:6] == [str(LIMIT), "2"]
        full.send(f"r{names[1]}", f"w{names[LIMIT + 1]}")
        assert full.expect("P,").startswith(f"P,{names[LIMIT + 1]},")
        assert _stats(full)[4:6] == [str(LIMIT), str(LIMIT)]


def test_without_the_mode_the_limit_stays_one_iqconnects_over_all_connections() -> None:
    with running(symbols=("AAA", "BBB", "CCC"), rate=0, watch_limit=2) as sim, connect(sim.level1_port) as a, \
            connect(sim.level1_port) as b:
        a.send("wAAA", "wBBB")
        a.expect("P,BBB")
        b.send("wCCC")
        assert b.expect("S,SYMBOL") == "S,SYMBOL LIMIT REACHED,CCC"
        assert _stats(b)[4:6] == ["2", "2"]  # Symbols counts IQConnect's watches, not the connection's


def test_two_connections_watching_the_same_symbol_get_identical_trades() -> None:
    with running(symbols=("AAA", "BBB", "CCC"), rate=3000, watch_limit=2, watch_limit_per_connection=True) as sim, \
            connect(sim.level1_port) as a, connect(sim.level1_port) as b:
        a.send("wAAA", "wBBB")
        b.send("wCCC", "wBBB")
        a.expect("P,BBB")
        b.expect("P,BBB")
        seen_a, seen_b = a.lines_for(2.0), b.lines_for(0.5)
        sim.faults.stall(3.0)  # both streams stop after the same event
        seen_a += a.drain(0.5)
        seen_b += b.drain(0.5)
        trades_a, trades_b = _trades(seen_a, "BBB"), _trades(seen_b, "BBB")
        assert len(trades_a) > 20 and len(trades_b) > 20
        common = min(len(trades_a), len(trades_b))
        assert trades_a[-common:] == trades_b[-common:]  # the same trades, however far back each began
        assert not _trades(seen_a, "CCC") and not _trades(seen_b, "AAA")


def test_admin_stats_describe_the_iqconnect_of_the_level1_connection_with_its_client_name() -> None:
    with running(symbols=("AAA", "BBB", "CCC"), rate=0, watch_limit=2, watch_limit_per_connection=True) as sim, \
            connect(sim.level1_port) as one, connect(sim.level1_port) as two, LineClient(sim.admin_port) as admin, \
            LineClient(sim.admin_port) as anonymous:
        one.send("S,SET CLIENT NAME,collector-1", "wAAA", "wBBB")
        two.send("S,SET CLIENT NAME,collector-2", "wAAA")
        one.expect("P,BBB")
        two.expect("P,AAA")
        admin.send("S,SET CLIENT NAME,collector-1")
        admin.drain(0.2)
        admin.send("S,REQUEST STATS")
        stats = fields(admin.expect("S,STATS,"))
        assert stats[4:7] == ["2", "2", "2"]  # Max symbols, Symbols, Clients of collector-1's IQConnect
        assert stats[12] == "Connected" and len(stats) == 22
        periodic = fields(admin.expect("S,STATS,", timeout=3))
        assert periodic[4:7] == ["2", "2", "2"]
        # an admin connection no Level 1 connection shares a name with: an IQConnect watching nothing
        anonymous.drain(0.2)
        anonymous.send("S,REQUEST STATS")
        assert fields(anonymous.expect("S,STATS,"))[4:7] == ["2", "0", "1"]
