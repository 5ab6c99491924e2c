"""librdkafka's log lines are throttled per kind, so a broker outage cannot flood the logs."""

from __future__ import annotations

import logging

from bus.kafka import RepeatThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def line(facility: str, client: str, text: str) -> logging.LogRecord:
    # the shape confluent-kafka gives librdkafka's lines
    return logging.LogRecord("bus.kafka.librdkafka", logging.ERROR, "", 0, "%s [%s] %s", (facility, client, text), None)


def test_repeats_of_one_kind_pass_once_per_interval_and_the_next_one_counts_the_held_back():
    clock = Clock()
    throttle = RepeatThrottle(interval_s=10.0, clock=clock)
    passed = [throttle.filter(line("FAIL", "producer-1", f"connect failed after {i}ms")) for i in range(40)]
    assert passed == [True] + [False] * 39
    assert throttle.filter(line("FAIL", "consumer-1", "connect failed")), "another client is another kind"
    assert throttle.filter(line("ERROR", "producer-1", "all brokers down")), "another facility is another kind"
    clock.now = 10.0
    resumed = line("FAIL", "producer-1", "connect failed")
    assert throttle.filter(resumed) and resumed.suppressed == 39
