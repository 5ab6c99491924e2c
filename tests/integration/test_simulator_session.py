"""Simulator sessions over real sockets: handshake, start-up, heartbeats, admin login and STATS."""

from __future__ import annotations

import re
import time

import pytest

from tests.integration.simulator_client import LineClient, connect, fields, running

pytestmark = pytest.mark.timeout(30)


def test_protocol_is_acknowledged_per_port_and_unknown_versions_are_refused() -> None:
    with running(rate=0) as sim:
        for port, suffix in ((sim.level1_port, ""), (sim.level2_port, ""), (sim.lookup_port, ""), (sim.admin_port, ",")):
            with LineClient(port) as client:
                client.send("S,SET PROTOCOL,6.1")
                assert client.expect("S,CURRENT PROTOCOL") == "S,CURRENT PROTOCOL,6.1" + suffix
                client.send("S,SET PROTOCOL,6.2")
                assert client.expect("S,CURRENT PROTOCOL") == "S,CURRENT PROTOCOL,6.2" + suffix
                client.send("S,SET PROTOCOL,9.9")
                assert client.expect("E,") == "E,9.9 is not a valid protocol.,"
                assert client.bad_endings == 0


def test_a_simulator_limited_to_61_refuses_62() -> None:
    with running(rate=0, protocol_versions=("6.1",)) as sim, LineClient(sim.level1_port) as client:
        client.send("S,SET PROTOCOL,6.2")
        assert client.expect("E,") == "E,6.2 is not a valid protocol.,"


def test_level1_start_up_messages_then_a_heartbeat_every_second() -> None:
    with running(rate=0, watch_limit=321) as sim, LineClient(sim.level1_port) as client:
        start = [client.read_line() for _ in range(4)]
        assert start[0].startswith("S,KEY,") and start[1] == "S,SERVER CONNECTED"
        assert start[2].startswith("S,IP,")
        cust = fields(start[3])
        assert cust[:3] == ["S", "CUST", "real_time"] and cust[10] == "321"
        client.send("S,SET CLIENT NAME,tester")
        beats = [client.expect("T,", timeout=2.5) for _ in range(2)]
        assert all(re.fullmatch(r"T,\d{8} \d{2}:\d{2}:\d{2}", b) for b in beats)
        assert beats[0] != beats[1]


def test_timestamps_can_be_turned_off_and_on_and_requested() -> None:
    with running(rate=0) as sim, connect(sim.level1_port) as client:
        client.send("S,TIMESTAMPSOFF")
        client.drain(0.2)
        assert not [x for x in client.lines_for(1.3) if x.startswith("T,")]
        client.send("T")
        assert client.expect("T,", timeout=1).startswith("T,")
        client.send("S,TIMESTAMPSON")
        assert client.expect("T,", timeout=2.5)


def test_unknown_commands_get_an_error_line_on_every_port() -> None:
    with running(rate=0) as sim:
        for port in (sim.level1_port, sim.level2_port, sim.admin_port):
            with connect(port) as client:
                client.send("XYZZY,1,2")
                assert client.expect("E,").startswith("E,Unknown command: XYZZY 1 2")
        with connect(sim.lookup_port) as client:
            client.send("XYZZY,1,2", "S,CONNECT")
            assert client.read_line() == "E,!SYNTAX_ERROR!,"
            assert client.read_line() == "E,!SYNTAX_ERROR!,"


def test_admin_stats_every_second_in_the_21_field_layout() -> None:
    with running(rate=0) as sim, LineClient(sim.admin_port) as admin, LineClient(sim.level1_port):
        first = admin.expect("S,STATS,")
        second = admin.expect("S,STATS,", timeout=2.5)
        for line in (first, second):
            f = fields(line)
            assert len(f) == 22 and f[-1] == "" and f[12] == "Connected" and f[4] == "500"
            assert re.fullmatch(r"[A-Z][a-z]{2} \d{2} \d{1,2}:\d{2}[AP]M", f[11])
        assert fields(second)[6] == "2"  # the admin and the Level 1 client


def test_admin_login_commands_are_acknowledged_and_the_password_never_echoed() -> None:
    with running(rate=0) as sim, connect(sim.admin_port) as admin:
        admin.send("S,REGISTER CLIENT APP,MYPRODUCT,1.0", "S,SET LOGINID,416828", "S,SET PASSWORD,hunter2",
                   "S,SET AUTOCONNECT,On", "S,SET SAVE LOGIN INFO,On", "S,CONNECT")
        replies = admin.read_until(lambda x: x.startswith("S,LOGIN INFO"))
        replies = [x for x in replies if not x.startswith("S,STATS")]
        assert replies == ["S,REGISTER CLIENT APP COMPLETED,", "S,CURRENT LOGINID,416828,",
                           "S,CURRENT PASSWORD,********,", "S,AUTOCONNECT ON,", "S,LOGIN INFO SAVED,"]
        assert fields(admin.expect("S,STATS,", timeout=2.5))[14] == "416828"
        admin.send("S,SET PASSWORD,hunter2")
        assert "hunter2" not in "".join(admin.lines_for(0.3))


def test_a_wrong_login_never_connects() -> None:
    with running(rate=200, login_ok=False) as sim, LineClient(sim.admin_port) as admin, \
            connect(sim.level1_port) as client:
        client.send("wAAPL")
        statuses = [fields(admin.expect("S,STATS,", timeout=2.5))[12] for _ in range(3)]
        assert statuses == ["Not Connected"] * 3
        lines = client.lines_for(0.5)
        assert not [x for x in lines if x[:2] in ("Q,", "P,")]
        assert not sim.stats.dtn_connected


def test_connect_delay_reports_not_connected_first() -> None:
    with running(rate=0, connect_delay=1.2) as sim, LineClient(sim.admin_port) as admin, \
            LineClient(sim.level1_port) as client:
        assert fields(admin.expect("S,STATS,"))[12] == "Not Connected"
        assert client.read_until(lambda x: x.startswith("S,SERVER"))[-1] == "S,SERVER DISCONNECTED"
        assert client.expect("S,SERVER CONNECTED", timeout=3)
        assert fields(admin.read_until(lambda x: "Connected," in x and "Not" not in x, timeout=3)[-1])[12] == "Connected"


def test_disconnect_and_connect_commands_drive_the_dtn_link() -> None:
    with running(rate=300) as sim, connect(sim.admin_port) as admin, connect(sim.level1_port) as client:
        client.send("wAAPL")
        client.expect("Q,AAPL,")
        admin.send("S,DISCONNECT")
        client.expect("S,SERVER DISCONNECTED")
        client.drain(0.2)
        assert not [x for x in client.lines_for(0.5) if x.startswith("Q,")]
        assert fields(admin.expect("S,STATS,", timeout=2.5))[12] == "Not Connected"
        admin.send("S,CONNECT")
        client.expect("S,SERVER CONNECTED")
        assert client.expect("Q,AAPL,", timeout=3)


def test_many_clients_per_port_each_get_the_stream() -> None:
    with running(rate=400) as sim:
        clients = [connect(sim.level1_port) for _ in range(12)]
        try:
            for c in clients:
                c.send("wMSFT")
            assert all(c.expect("Q,MSFT,", timeout=5) for c in clients)
            assert sim.stats.clients_connected["level1"] == 12
        finally:
            for c in clients:
                c.close()
        deadline = time.monotonic() + 5
        while sim.stats.clients_connected["level1"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sim.stats.clients_connected["level1"] == 0


def test_client_stats_list_each_connection_every_second() -> None:
    with running(rate=0) as sim, connect(sim.admin_port) as admin, connect(sim.level1_port) as client:
        client.send("S,SET CLIENT NAME,quotes", "wAAPL", "wMSFT")
        client.expect("P,MSFT")
        admin.send("S,CLIENTSTATS ON")
        lines = admin.read_until(lambda x: x.startswith("S,CLIENTSTATS,1,"), timeout=2.5)
        quote = fields(lines[-1])
        assert quote[4] == "quotes" and quote[6] == "2" and re.fullmatch(r"\d{8} \d{6}", quote[5])
        assert len(quote) == 12 and quote[-1] == ""


def test_start_stop_are_idempotent_and_faults_need_a_running_simulator() -> None:
    from collectors.iqfeed.simulator import IQFeedSimulator, SimulatorNotRunning
    from tests.integration.simulator_client import config

    sim = IQFeedSimulator(config(rate=0))
    with pytest.raises(SimulatorNotRunning):
        sim.faults.stall(1)
    sim.start()
    assert sim.start() is sim and sim.level1_port > 0
    port = sim.level1_port
    sim.stop()
    sim.stop()
    with pytest.raises(ConnectionRefusedError):
        LineClient(port, timeout=1)
    with sim:  # starts again, on the same ports
        assert sim.level1_port == port
        with LineClient(port) as client:
            assert client.read_line().startswith("S,KEY,")
