"""The notifier: filters alert changes, queues them, and delivers them off the alert job's thread.

    Engine.evaluate_alerts ──notify(changed)──► filter (state, severity) ─► Debouncer
        ─► per channel: bounded queue (full: drop oldest, count it)
        ─► that channel's worker thread ─► channel.send, retried with exponential backoff (tenacity)
        ─► counted: sent | failed (logged) | dropped (logged)

``notify`` only takes a lock and appends, so a dead webhook or a slow SMTP server can
never stall alert evaluation. Each channel is retried on its own: email still goes out
while the webhook is down. Nothing is lost silently: every notification ends counted as
sent, failed or dropped, and the last two are logged with the rule and subject.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_when_event_set,
    wait_exponential,
)

from alerts.lifecycle import Alert, Severity
from alerts.notify.channels import Channel, EmailChannel, PermanentDeliveryError, WebhookChannel
from alerts.notify.message import Debouncer, Notification, wants_notification
from config import NotifySettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelStats:
    sent: int = 0
    failed: int = 0  # gave up after the retries (or at once on a permanent error)
    dropped: int = 0  # never tried: pushed out of a full queue, or still queued at shutdown
    retries: int = 0


@dataclass(frozen=True)
class NotifierStats:
    queued: int
    channels: dict[str, ChannelStats]


class _ChannelWorker:
    """One channel's bounded queue and the thread that delivers it, so channels never wait on each other."""

    def __init__(self, channel: Channel, *, queue_size: int, attempts: int, wait: wait_exponential) -> None:
        self.channel = channel
        self._queue_size = queue_size
        self._attempts = attempts
        self._wait = wait
        self._queue: deque[Notification] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._abort = threading.Event()  # set at the close deadline: stop retrying, stop sleeping
        self._thread: threading.Thread | None = None
        self._counts = {"sent": 0, "failed": 0, "dropped": 0, "retries": 0}

    def put(self, notifications: list[Notification]) -> int:
        """Queue ``notifications`` (the oldest queued ones make room); returns how many were queued."""
        with self._cond:
            if self._closed:
                for notification in notifications:
                    self._drop(notification, "notifier closed")
                return 0
            for notification in notifications:
                if len(self._queue) >= self._queue_size:
                    self._drop(self._queue.popleft(), "queue full")
                self._queue.append(notification)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"tickops-notify-{self.channel.name}",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()
        return len(notifications)

    def _drop(self, notification: Notification, reason: str) -> None:
        """Count and log a notification that will never be tried (caller holds the lock)."""
        self._counts["dropped"] += 1
        alert = notification.alert
        log.warning("alert notification dropped", extra={
            "channel": self.channel.name, "rule": alert.rule, "subject": alert.subject, "state": alert.state,
            "reason": reason, "dropped": self._counts["dropped"]})

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue or self._abort.is_set():
                    return
                notification = self._queue.popleft()
                self._busy = True
            try:
                self._deliver(notification)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _deliver(self, notification: Notification) -> None:
        channel, alert = self.channel, notification.alert
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts) | stop_when_event_set(self._abort),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: not isinstance(exc, PermanentDeliveryError)),
            sleep=self._abort.wait,  # an interruptible sleep, so close() never waits out a backoff
            before_sleep=lambda state: self._on_retry(alert, state),
            reraise=True,
        )
        try:
            retrying(channel.send, notification)
        except Exception as exc:  # noqa: BLE001 - any failure is counted and logged, never raised
            with self._cond:
                self._counts["failed"] += 1
            log.error("alert notification failed", extra={
                "channel": channel.name, "rule": alert.rule, "subject": alert.subject, "state": alert.state,
                "attempts": retrying.statistics.get("attempt_number", 1), "error": str(exc)})
            return
        with self._cond:
            self._counts["sent"] += 1
        log.info("alert notification sent", extra={
            "channel": channel.name, "rule": alert.rule, "subject": alert.subject, "state": alert.state})

    def _on_retry(self, alert: Alert, state: RetryCallState) -> None:
        with self._cond:
            self._counts["retries"] += 1
        error = state.outcome.exception() if state.outcome else None
        log.warning("alert notification retry", extra={
            "channel": self.channel.name, "rule": alert.rule, "subject": alert.subject, "state": alert.state,
            "attempt": state.attempt_number, "wait_s": round(state.upcoming_sleep, 3), "error": str(error)})

    def drain(self, deadline: float) -> None:
        """Deliver what is queued until ``deadline`` (monotonic); then stop and count the rest as dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            while (self._queue or self._busy) and self._thread is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            self._abort.set()
            while self._queue:
                self._drop(self._queue.popleft(), "not delivered before shutdown")
            self._cond.notify_all()

    def join(self, deadline: float) -> None:
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))

    def stats(self) -> tuple[int, ChannelStats]:
        with self._cond:
            return len(self._queue), ChannelStats(**self._counts)


class Notifier:
    """Delivers alert notifications; each channel has its own queue and thread (started on first use)."""

    def __init__(self, channels: list[Channel], *, instance_id: str, min_severity: Severity = "warning",
                 queue_size: int = 1000, retry_attempts: int = 4, retry_initial_s: float = 1.0,
                 retry_max_s: float = 30.0) -> None:
        if not channels:
            raise ValueError("a Notifier needs at least one channel")
        self.channels = list(channels)
        self.instance_id = instance_id
        self.min_severity = min_severity
        self._debouncer = Debouncer()
        wait = wait_exponential(multiplier=retry_initial_s, max=retry_max_s)
        self._workers = [_ChannelWorker(c, queue_size=queue_size, attempts=retry_attempts, wait=wait)
                         for c in self.channels]

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier | None:
        """The notifier for ``settings.notify``, or None when no channel is configured."""
        cfg: NotifySettings = settings.notify
        channels: list[Channel] = []
        if cfg.webhook_url:
            channels.append(WebhookChannel(cfg.webhook_url.get_secret_value(), timeout_s=cfg.webhook_timeout_s))
        if cfg.smtp_host:
            channels.append(EmailChannel(
                cfg.smtp_host, cfg.smtp_port, cfg.email_from, list(cfg.email_to), starttls=cfg.smtp_starttls,
                username=cfg.smtp_username, password=cfg.smtp_password.get_secret_value(),
                timeout_s=cfg.smtp_timeout_s))
        if not channels:
            return None
        return cls(channels, instance_id=settings.instance_id, min_severity=cfg.min_severity,
                   queue_size=cfg.queue_size, retry_attempts=cfg.retry_attempts,
                   retry_initial_s=cfg.retry_initial_s, retry_max_s=cfg.retry_max_s)

    def notify(self, alerts: list[Alert]) -> int:
        """Queue the changes worth sending; returns how many deliveries were queued. Never blocks on I/O."""
        wanted = [a for a in alerts if wants_notification(a, self.min_severity) and self._debouncer.admit(a)]
        if not wanted:
            return 0
        notifications = [Notification(alert, self.instance_id) for alert in wanted]
        return sum(worker.put(notifications) for worker in self._workers)

    def close(self, timeout_s: float = 2.0) -> None:
        """Deliver what is queued until ``timeout_s``; then stop retrying and count the rest as dropped.

        Channels drain side by side under one deadline. An HTTP or SMTP call already in
        flight cannot be interrupted; it ends within its channel timeout on its daemon
        thread and is counted then.
        """
        deadline = time.monotonic() + timeout_s
        drains = [threading.Thread(target=w.drain, args=(deadline,), daemon=True) for w in self._workers]
        for thread in drains:
            thread.start()
        for thread in drains:
            thread.join()
        for worker in self._workers:
            worker.join(deadline)

    def stats(self) -> NotifierStats:
        per_channel = [(w.channel.name, *w.stats()) for w in self._workers]
        return NotifierStats(sum(q for _, q, _ in per_channel), {name: c for name, _, c in per_channel})
