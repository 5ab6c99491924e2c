"""The monitoring endpoint over a real socket: Prometheus text and the health verdict."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitoring.health import INCIDENT_WINDOW_S
from monitoring.http import Health, MonitoringServer, combine
from monitoring.metrics import start_monitoring
from tests.engine_status import idle_status
from tests.fake_clock import FakeClock


def test_worst_check_wins_and_reasons_are_kept():
    assert combine([("ok", "feed")]).state == "ok"
    health = combine([("ok", "feed"), ("degraded", "spool growing"), ("down", "storage unreachable")])
    assert health.state == "down" and health.reasons == ("spool growing", "storage unreachable")


@pytest.mark.timeout(30)
def test_metrics_and_healthz_are_served_with_status_codes():
    registry = CollectorRegistry()
    Counter("tickops_test_events", "events", registry=registry).inc(3)
    verdict = {"value": Health("ok")}
    server = MonitoringServer("127.0.0.1", 0, registry, lambda: verdict["value"])
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        metrics = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()
        assert "tickops_test_events_total 3.0" in metrics
        assert json.loads(urllib.request.urlopen(f"{base}/healthz", timeout=5).read())["status"] == "ok"
        verdict["value"] = Health("down", ("kafka unreachable",))
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(f"{base}/healthz", timeout=5)
        assert caught.value.code == 503
        assert json.loads(caught.value.read())["reasons"] == ["kafka unreachable"]
    finally:
        server.stop()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read().decode()


@pytest.mark.timeout(30)
def test_healthz_recovers_after_a_single_dropped_event_while_metrics_keep_the_count():
    clock = FakeClock()
    current = {"status": idle_status()}
    server = start_monitoring(lambda: current["status"], "127.0.0.1", 0, clock=clock)
    assert server is not None
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert _get(f"{base}/healthz")[0] == 200
        current["status"] = idle_status(dropped=1)
        code, body = _get(f"{base}/healthz")
        assert code == 503 and json.loads(body)["status"] == "down"
        clock.now += INCIDENT_WINDOW_S + 1  # nothing dropped since
        code, body = _get(f"{base}/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok", body
        assert "tickops_producer_dropped_total 1.0" in _get(f"{base}/metrics")[1]
    finally:
        server.stop()
