"""The notifier's queue and retries with an in-process channel: every notification ends counted.

The channel here stands in for the network endpoint (the real webhook and SMTP channels
are exercised against real servers in tests/integration/test_notify_channels.py).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import pytest

from alerts.lifecycle import Alert
from alerts.notify import ChannelStats, DeliveryError, Notification, Notifier, PermanentDeliveryError

T0 = 1_780_000_000 * 1_000_000_000


def _alert(subject: str, state: str = "firing") -> Alert:
    return Alert("job_failing", subject, "critical", state, f"background job {subject} failing", T0, T0, fired_ns=T0)


@dataclass
class EndpointChannel:
    """Records what it receives; can hold each send until released, or fail with a given error."""

    name: str = "endpoint"
    hold: threading.Event | None = None
    error: Exception | None = None
    received: list[Notification] = field(default_factory=list)
    calls: int = 0
    entered: threading.Event = field(default_factory=threading.Event)

    def send(self, notification: Notification) -> None:
        self.calls += 1
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(5)
        if self.error is not None:
            raise self.error
        self.received.append(notification)


def _wait(predicate, timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_full_queue_drops_the_oldest_waiting_notification_and_counts_it():
    release = threading.Event()
    channel = EndpointChannel(hold=release)
    notifier = Notifier([channel], instance_id="t", queue_size=2)
    try:
        notifier.notify([_alert("a")])
        assert channel.entered.wait(2)  # "a" is in flight, the queue is empty
        notifier.notify([_alert("b"), _alert("c"), _alert("d")])
        assert notifier.stats().queued == 2
        release.set()
        _wait(lambda: notifier.stats().channels["endpoint"].sent == 3)
        assert [n.alert.subject for n in channel.received] == ["a", "c", "d"]
        assert notifier.stats().channels["endpoint"] == ChannelStats(sent=3, failed=0, dropped=1, retries=0)
    finally:
        release.set()
        notifier.close(timeout_s=1)


def test_a_permanent_error_is_not_retried_and_counts_as_failed():
    channel = EndpointChannel(error=PermanentDeliveryError("webhook answered HTTP 404 Not Found"))
    notifier = Notifier([channel], instance_id="t", retry_attempts=5, retry_initial_s=0.01)
    try:
        notifier.notify([_alert("a")])
        _wait(lambda: notifier.stats().channels["endpoint"].failed == 1)
        assert channel.calls == 1 and notifier.stats().channels["endpoint"].retries == 0
    finally:
        notifier.close(timeout_s=1)


def test_a_failing_channel_does_not_hold_up_the_others():
    broken = EndpointChannel(name="webhook", error=DeliveryError("webhook unreachable"))
    working = EndpointChannel(name="email")
    notifier = Notifier([broken, working], instance_id="t", retry_attempts=3, retry_initial_s=0.5)
    try:
        notifier.notify([_alert("a"), _alert("b")])
        # email goes out while the webhook is still waiting out its backoff
        _wait(lambda: notifier.stats().channels["email"].sent == 2)
        assert notifier.stats().channels["webhook"].failed == 0 and working.calls == 2
        _wait(lambda: notifier.stats().channels["webhook"].failed == 2, timeout_s=10)
        stats = notifier.stats().channels
        assert broken.calls == 6 and stats["webhook"].retries == 4 and stats["email"].sent == 2
    finally:
        notifier.close(timeout_s=1)


def test_close_stops_retrying_at_its_deadline_and_counts_what_is_left_as_dropped():
    channel = EndpointChannel(error=DeliveryError("down"))
    notifier = Notifier([channel], instance_id="t", retry_attempts=10, retry_initial_s=30)
    notifier.notify([_alert("a"), _alert("b"), _alert("c")])
    assert channel.entered.wait(2)
    started = time.monotonic()
    notifier.close(timeout_s=0.3)
    assert time.monotonic() - started < 1.0
    assert notifier.stats().channels["endpoint"] == ChannelStats(sent=0, failed=1, dropped=2, retries=1)
    notifier.notify([_alert("d")])  # after close: not sent, but counted
    assert notifier.stats().channels["endpoint"].dropped == 3


def test_repeated_changes_are_queued_once():
    channel = EndpointChannel()
    notifier = Notifier([channel], instance_id="t")
    try:
        assert notifier.notify([_alert("a")]) == 1
        assert notifier.notify([_alert("a")]) == 0
        assert notifier.notify([_alert("a", "pending")]) == 0
        assert notifier.notify([_alert("a", "resolved")]) == 1
        _wait(lambda: notifier.stats().channels["endpoint"].sent == 2)
    finally:
        notifier.close(timeout_s=1)


def test_a_notifier_without_channels_is_a_configuration_error():
    with pytest.raises(ValueError, match="at least one channel"):
        Notifier([], instance_id="t")
