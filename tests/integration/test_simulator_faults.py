"""Fault injection over real sockets: each fault does what our client must survive, and ends."""

from __future__ import annotations

import socket
import time

import pytest

from tests.integration.simulator_client import LineClient, connect, fields, running, wait_for

pytestmark = pytest.mark.timeout(30)


def _closed(client: LineClient) -> bool:
    try:
        client.lines_for(1.0)
    except ConnectionError:
        return True
    return client.closed_by_peer


def test_drop_connections_closes_every_client_and_keeps_listening() -> None:
    with running(rate=300) as sim:
        clients = [connect(sim.level1_port), connect(sim.level2_port), connect(sim.admin_port),
                   connect(sim.lookup_port)]
        sim.faults.drop_connections()
        assert all(_closed(c) for c in clients)
        with connect(sim.level1_port) as again:
            again.send("wAAPL")
            assert again.expect("Q,AAPL,")
        for c in clients:
            c.close()


def test_stall_stops_everything_then_answers_what_was_asked() -> None:
    with running(rate=500) as sim, connect(sim.level1_port) as client:
        client.send("wAAPL")
        client.expect("Q,AAPL,")
        sim.faults.stall(1.5)
        client.drain(0.2)
        client.send("S,REQUEST WATCHES")
        started = time.monotonic()
        silent = client.lines_for(1.0)
        assert silent == []  # no heartbeat, no data, no reply, yet the socket is open
        assert client.expect("S,WATCHES", timeout=2) == "S,WATCHES,AAPL"
        assert time.monotonic() - started >= 1.2
        assert client.expect("T,", timeout=2) and client.expect("Q,AAPL,")


def test_server_disconnect_and_reconnect() -> None:
    with running(rate=800, symbols=("AAPL",)) as sim, connect(sim.level1_port) as client, \
            LineClient(sim.admin_port) as admin, connect(sim.lookup_port) as lookup:
        client.send("wAAPL")
        client.expect("Q,AAPL,")
        sim.faults.server_disconnect()
        assert client.expect("S,SERVER") == "S,SERVER DISCONNECTED"
        assert client.read_line() == "S,SERVER RECONNECT FAILED"
        before = sim.stats.market_events
        outage = client.lines_for(1.1)
        assert not [x for x in outage if x[:2] in ("Q,", "P,")]
        assert [x for x in outage if x.startswith("T,")]  # IQConnect itself is alive
        admin.drain(0.05)
        assert fields(admin.expect("S,STATS,", timeout=2))[12] == "Not Connected"
        assert sim.stats.market_events > before  # the market moved on without us
        sim.faults.server_reconnect()
        assert client.expect("S,SERVER CONNECTED") == "S,SERVER CONNECTED"
        assert client.read_line().startswith("F,AAPL,") and client.read_line().startswith("P,AAPL,")
        assert client.expect("Q,AAPL,")
        status = fields(admin.read_until(lambda x: x.startswith("S,STATS,") and ",Connected," in x, timeout=3)[-1])
        assert status[8] == "1"  # one reconnection
        lookup.send("HTX,AAPL,0,1,h")
        assert len(lookup.read_until(lambda x: x == "h,!ENDMSG!,")) > 100


def test_malformed_lines_arrive_at_the_rate_asked_and_stop() -> None:
    with running(rate=0) as sim, connect(sim.level1_port) as l1, connect(sim.level2_port) as l2:
        sim.faults.malformed(50)
        garbage = [x for x in l1.lines_for(1.0) if not x.startswith(("T,", "S,SERVER"))]
        assert 30 <= len(garbage) <= 80
        assert {"X,unknown message type,1,2,3,", "Q,AAPL"} <= set(garbage)
        assert any(x.startswith("8,AAPL,Z,") for x in l2.lines_for(0.3))
        sim.faults.malformed(0)
        l1.drain(0.1)
        assert not [x for x in l1.lines_for(0.5) if not x.startswith("T,")]
        assert sim.stats.malformed_sent >= len(garbage)


def test_refused_connections_then_the_same_ports_again() -> None:
    with running(rate=0) as sim, connect(sim.level1_port) as kept:
        port = sim.level1_port
        sim.faults.refuse_connections(1.0)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert kept.expect("T,", timeout=2)  # open connections are left alone
        wait_for(lambda: _accepts(port), timeout=5)
        assert sim.level1_port == port
        with connect(sim.level1_port) as again:
            assert again.expect("T,", timeout=2)


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return False
    return True


def test_a_silenced_symbol_sends_nothing_while_others_go_on() -> None:
    with running(rate=1500) as sim, connect(sim.level1_port) as client:
        client.send("wAAPL", "wMSFT")
        client.expect("Q,AAPL,")
        sim.faults.silence_symbol("AAPL", 1.0)
        client.lines_for(0.1)
        during = [x for x in client.lines_for(0.7) if x.startswith("Q,")]
        assert during and not [x for x in during if x.startswith("Q,AAPL,")]
        assert client.expect("Q,AAPL,", timeout=2)  # the silence ends by itself
        sim.faults.silence_symbol("MSFT")  # until cleared
        client.lines_for(0.1)
        assert not [x for x in client.lines_for(0.5) if x.startswith("Q,MSFT,")]
        sim.faults.clear()
        assert client.expect("Q,MSFT,", timeout=2)


def test_faults_by_admin_command() -> None:
    with running(rate=800) as sim, connect(sim.admin_port) as admin, connect(sim.level1_port) as client:
        client.send("wAAPL")
        client.expect("Q,AAPL,")
        admin.send("S,SIM FAULT,SILENCE SYMBOL,AAPL")
        assert admin.expect("S,SIM FAULT") == "S,SIM FAULT OK,SILENCE SYMBOL,"
        client.lines_for(0.1)
        assert not [x for x in client.lines_for(0.4) if x.startswith("Q,")]
        admin.send("S,SIM FAULT,CLEAR", "S,SIM FAULT,EXPLODE", "S,SIM FAULT,STALL,soon",
                   "S,SIM FAULT,SILENCE SYMBOL,NOPE")
        assert admin.expect("S,SIM FAULT") == "S,SIM FAULT OK,CLEAR,"
        assert admin.expect("E,").startswith("E,SIM FAULT unknown fault EXPLODE")
        assert admin.expect("E,").startswith("E,SIM FAULT STALL: bad argument")
        assert admin.expect("E,").startswith("E,SIM FAULT unknown symbol NOPE")
        assert client.expect("Q,AAPL,", timeout=2)
        admin.send("S,SIM FAULT,SERVER DISCONNECT")
        assert client.expect("S,SERVER DISCONNECTED")
        admin.send("S,SIM FAULT,DROP CONNECTIONS")
        assert _closed(client)


def test_a_client_that_does_not_read_is_dropped_and_the_others_go_on() -> None:
    with running(rate=20_000, client_buffer_bytes=65_536) as sim, connect(sim.level1_port) as reader:
        sleeper = socket.create_connection(("127.0.0.1", sim.level1_port))
        sleeper.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sleeper.sendall(b"wAAPL\r\nwMSFT\r\n")
        reader.send("wAAPL")
        deadline = time.monotonic() + 20
        while sim.stats.clients_dropped == 0 and time.monotonic() < deadline:
            reader.lines_for(0.2)
        assert sim.stats.clients_dropped == 1
        assert reader.expect("Q,AAPL,", timeout=2)
        wait_for(lambda: sim.stats.clients_connected["level1"] == 1)
        sleeper.close()
