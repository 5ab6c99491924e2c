"""The monitoring endpoint over a real socket: Prometheus text and the health verdict."""

from __future__ import annotations

import json
from dataclasses import replace
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitoring.http import Health, MonitoringServer, combine
from runtime.health import INCIDENT_WINDOW_S
from runtime.metrics import start_monitoring
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


@pytest.mark.timeout(30)
def test_metrics_export_producer_rejects_spool_failures_and_the_bus_and_store_bounds():
    status = idle_status()
    spool = replace(status.producer.spool, write_failures=3, corrupt_bytes=40, failing=True)
    status = replace(status, producer=replace(status.producer, rejected=2, spool=spool),
                     bus_stats={"refused_bytes": 4, "bytes": 1000}, store_stats={"open": 2, "exhausted": 1})
    server = start_monitoring(lambda: status, "127.0.0.1", 0)
    assert server is not None
    try:
        metrics = _get(f"http://127.0.0.1:{server.port}/metrics")[1]
    finally:
        server.stop()
    for line in ("tickops_producer_rejected_total 2.0", "tickops_spool_write_failures_total 3.0",
                 "tickops_spool_corrupt_bytes_total 40.0", "tickops_spool_failing 1.0",
                 'tickops_bus_resource{stat="refused_bytes"} 4.0', 'tickops_store_resource{stat="exhausted"} 1.0'):
        assert line in metrics, line
