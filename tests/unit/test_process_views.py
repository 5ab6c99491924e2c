"""What the Overview shows of processes: a supervised IQConnect, and other processes' /healthz answers
(read by monitoring/health_probe.py: a body that is not a verdict is reported, never raised)."""

from __future__ import annotations

import msgspec

from collectors.iqfeed.iqconnect import SupervisorState
from dashboard.processes import iqconnect_row, process_row
from monitoring.health_probe import UNREACHABLE, healthz_url, parse_health


def test_a_healthz_verdict_is_read_with_its_reasons_and_details():
    body = msgspec.json.encode({"status": "degraded", "reasons": ["IQConnect: IQConnect exited with code 3"],
                                "details": {"role": "collector", "source": "c-1@1", "ingested": 12,
                                            "iqconnect": {"dtn_connected": False, "restarts": 2,
                                                          "problem": "IQConnect exited with code 3"}}})
    result = parse_health("http://collector:9464", body, checked_ns=5)
    assert (result.state, result.reasons, result.checked_ns) == (
        "degraded", ("IQConnect: IQConnect exited with code 3",), 5)
    row = process_row(result)
    assert (row["role"], row["health"], row["source"], row["ingested"]) == ("collector", "degraded", "c-1@1", 12)
    assert row["IQConnect"] == "NOT CONNECTED, 2 restarts: IQConnect exited with code 3"


def test_a_body_that_is_not_a_verdict_is_reported_unreachable_with_what_was_wrong():
    for body in (b"<html>nginx</html>", b'{"status": "fine"}', b"[1, 2]"):
        result = parse_health("http://x:1", body, checked_ns=1)
        assert result.state == UNREACHABLE and result.error.startswith("not a health answer"), body
        assert process_row(result)["reasons"] == result.error


def test_a_base_url_or_a_healthz_url_both_reach_healthz():
    assert healthz_url("http://writer:9464") == healthz_url("http://writer:9464/healthz/") == \
        "http://writer:9464/healthz"


def test_the_iqconnect_row_says_what_an_operator_needs():
    state = SupervisorState(running=False, pid=77, dtn_connected=None, restarts=3, last_exit_code=3,
                            problem="IQConnect never connected to DTN within 60 s: this is a login or entitlement "
                                    "problem")
    assert iqconnect_row(state) == {"process": "not running", "pid": 77, "DTN": "unknown", "restarts": 3,
                                    "last exit code": 3, "problem": state.problem}
