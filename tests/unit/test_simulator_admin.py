"""Admin-port pieces without sockets: the STATS layout and fault commands."""

from __future__ import annotations

import pytest

from collectors.iqfeed.simulator.admin import FaultCommandError, StatsFields, parse_fault, stats_line

pytestmark = pytest.mark.timeout(30)


def _stats(connected: bool) -> StatsFields:
    return StatsFields(
        connected=connected, max_symbols=500, symbols=3, clients=2, seconds_since_update=0, reconnections=1,
        attempted_reconnections=2, start_time="Aug 20 2:42PM", market_time="Aug 20 2:43PM", version="6.2.0.25",
        login_id="416828", kb_received=0.55, kb_per_s_received=0.02, avg_kb_per_s_received=0.03, kb_sent=3.94,
        kb_per_s_sent=0.11, avg_kb_per_s_sent=0.18,
    )


def test_connected_stats_have_the_21_field_layout() -> None:
    line = stats_line(_stats(True))
    assert line == ("S,STATS,66.112.156.220,60002,500,3,2,0,1,2,Aug 20 2:42PM,Aug 20 2:43PM,Connected,6.2.0.25,"
                    "416828,0.55,0.02,0.03,3.94,0.11,0.18,\r\n")
    assert len(line.rstrip("\r\n").split(",")) == 22


def test_not_connected_stats_blank_what_iqconnect_blanks() -> None:
    fields = stats_line(_stats(False)).rstrip("\r\n").split(",")
    assert len(fields) == 22 and fields[12] == "Not Connected"
    assert fields[2:6] == ["", "", "0", "0"] and fields[10:12] == ["", ""] and fields[14] == "416828"


def test_fault_commands_parse_to_methods_and_arguments() -> None:
    assert parse_fault(["STALL", "5"]) == ("stall", (5.0,))
    assert parse_fault(["drop connections"]) == ("drop_connections", ())
    assert parse_fault(["SILENCE SYMBOL", "AAPL"]) == ("silence_symbol", ("AAPL",))
    assert parse_fault(["SILENCE SYMBOL", "AAPL", "2.5", ""]) == ("silence_symbol", ("AAPL", 2.5))
    assert parse_fault(["CLEAR"]) == ("clear", ())


@pytest.mark.parametrize("args", [[], ["EXPLODE"], ["STALL"], ["STALL", "soon"], ["STALL", "-1"], ["CLEAR", "1"]])
def test_bad_fault_commands_say_what_is_wrong(args: list[str]) -> None:
    with pytest.raises(FaultCommandError):
        parse_fault(args)
