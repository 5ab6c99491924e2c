"""A writer's record on the fleet status channel: read strictly like a collector's, keyed apart from its
collector's (an embedded writer shares the instance id), with its lag per topic and its storing rate."""

from __future__ import annotations

import json

import pytest

from bus.base import TopicPartition
from monitoring.http import Health
from runtime.fleet_status import FleetView, InstanceStatus, decode_statuses, encode_status
from storage.writer_status import (
    StoredRate,
    WriterStatus,
    WriterStatusError,
    WriterStatusReporter,
    decode_writer_status,
    encode_writer_status,
    lag_by_topic,
    writer_key,
)

S = 1_000_000_000


def writer(instance: str = "w1", *, updated_s: float = 100, state: str = "running", lag: int = 0) -> WriterStatus:
    return WriterStatus(instance, "writer", state, "ok", (), ("t.trades[0]",), lag, {"t.trades": lag}, 0.0, 0, "",
                        False, 0, int(updated_s * S))


def collector(instance: str, *, updated_s: float = 100) -> InstanceStatus:
    return InstanceStatus(instance, f"{instance}@1", "running", "ok", (), (0,), 4, True, False, 500, 1, ("AAPL",),
                          {}, 0, 0, int(updated_s * S))


def test_a_writer_status_survives_its_record_and_names_its_role_for_any_kafka_tool():
    original = writer(lag=7)
    payload = encode_writer_status(original)
    assert json.loads(payload)["v"] == 1 and json.loads(payload)["role"] == "writer"
    assert decode_writer_status("w1/writer", payload) == original


@pytest.mark.parametrize(("key", "payload", "why"), [
    ("w1/writer", b"\xff", "not JSON"),
    ("w1/writer", b'{"v":2,"role":"writer"}', "not a version 1 writer status"),
    ("w1/writer", b'{"v":1,"role":"writer","instance_id":"w1"}', "lacks or mistypes"),
    ("w2/writer", encode_writer_status(writer("w1")), "of instance 'w1'"),
])
def test_an_unreadable_writer_record_is_an_error_naming_it(key, payload, why):
    with pytest.raises(WriterStatusError, match=why):
        decode_writer_status(key, payload)


def test_an_embedded_writer_and_its_collector_keep_both_records_and_a_bad_one_is_reported_not_dropped():
    entries = {"c1": encode_status(collector("c1")), writer_key("c1"): encode_writer_status(writer("c1")),
               "w9/writer": b"junk"}
    collectors, writers, rejected = decode_statuses(entries)
    assert [c.instance_id for c in collectors] == ["c1"]
    assert [w.instance_id for w in writers] == ["c1"]
    assert list(rejected) == ["w9/writer"] and "not JSON" in rejected["w9/writer"]


def test_partition_lag_adds_up_per_topic():
    assert lag_by_topic({"p.trades[0]": 3, "p.trades[1]": 4, "p.quotes[0]": 1}) == {"p.quotes": 1, "p.trades": 7}


def test_the_storing_rate_spans_at_least_a_second_and_a_restarted_count_starts_over():
    rate = StoredRate()
    assert rate.sample(100, 10.0) == 0.0
    assert rate.sample(150, 10.2) == 0.0  # too short a span: the last rate
    assert rate.sample(300, 12.0) == 100.0
    assert rate.sample(350, 12.5) == 100.0
    assert rate.sample(5, 13.0) == 100.0  # the count went back (a new writer): a new base, no negative rate
    assert rate.sample(55, 14.0) == 50.0


def test_a_reporter_sends_when_due_or_forced_with_the_writers_partitions_and_health():
    now = [0.0]
    sent: list[tuple[str, bytes]] = []
    reporter = WriterStatusReporter("w1", 5.0, embedded=True, clock=lambda: now[0], clock_ns=lambda: 7 * S)

    def sample():
        return Health("degraded", ("storage writes failing",)), None, [TopicPartition("p.trades", 1)]

    def send(key: str, value: bytes) -> None:
        sent.append((key, value))

    assert reporter.report(sample, send) is not None
    now[0] = 4.0
    assert reporter.report(sample, send) is None
    assert reporter.report(sample, send, state="stopped", force=True) is not None
    assert [key for key, _ in sent] == ["w1/writer", "w1/writer"]
    last = decode_writer_status("w1/writer", sent[-1][1])
    assert (last.state, last.health, last.reasons, last.partitions, last.embedded) == (
        "stopped", "degraded", ("storage writes failing",), ("p.trades[1]",), True)


def test_a_writer_silent_past_the_bound_is_no_longer_responsive_and_is_gone_since_its_last_status():
    view = FleetView(None, (), None, 130 * S, 20.0, writers=(writer("w1", updated_s=100), writer("w2", updated_s=125)))
    assert [view.responsive(w) for w in view.writers] == [False, True]
    assert view.gone_since_ns(view.writers[0]) == 100 * S and view.gone_since_ns(view.writers[1]) is None
