"""Alert notifications against real receivers: an HTTP server for the webhook, aiosmtpd for email.

Both servers run in-process on 127.0.0.1 and are stopped by their fixtures. Retries use
short backoffs so that every test ends in a few seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from prometheus_client import generate_latest

from alerts.lifecycle import AlertBook, Finding
from alerts.notify import ChannelStats, EmailChannel, Notifier, WebhookChannel
from config import load_settings
from runtime.engine import Engine
from runtime.metrics import engine_registry
from tests.ports import free_port
from tests.integration.pipeline import wait_until

S = 1_000_000_000
T0 = 1_780_000_000 * S
HEARTBEAT = Finding("heartbeat_missing", "level1", "critical", "no IQFeed heartbeat for 4.2 s", value=4.2)


@dataclass
class WebhookReceiver:
    """A real HTTP endpoint: answers POSTs with the next scripted status (then 200) and keeps what came."""

    url: str
    statuses: deque[int]
    requests: list[tuple[int, dict]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self) -> list[dict]:
        with self.lock:
            return [body for status, body in self.requests if status == 200]


@pytest.fixture
def webhook() -> Iterator[Callable[..., WebhookReceiver]]:
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(*statuses: int) -> WebhookReceiver:
        receiver: WebhookReceiver

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    status = receiver.statuses.popleft() if receiver.statuses else 200
                    receiver.requests.append((status, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/tickops", deque(statuses))
        return receiver

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(2)


class Mailbox:
    """aiosmtpd handler that keeps every envelope it accepts."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []

    async def handle_DATA(self, server, session, envelope: Envelope) -> str:  # aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, Mailbox]]:
    """A real SMTP server on 127.0.0.1 accepting AUTH (without TLS) for tickops / s3cret only."""

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data == (b"tickops", b"s3cret")
        return AuthResult(success=ok, handled=False)

    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
                            auth_require_tls=False)
    controller.start()
    try:
        yield controller, mailbox
    finally:
        controller.stop()


def _firing_then_resolved() -> list[list]:
    book = AlertBook()
    return [book.evaluate([HEARTBEAT], T0), book.evaluate([], T0 + 30 * S)]


def test_webhook_receives_json_for_a_firing_then_a_resolved_alert(webhook):
    receiver = webhook()
    notifier = Notifier([WebhookChannel(receiver.url, timeout_s=2)], instance_id="tickops-test")
    try:
        for changed in _firing_then_resolved():
            notifier.notify(changed)
        wait_until(lambda: len(receiver.delivered()) == 2, 5, "two webhook posts")
    finally:
        notifier.close(timeout_s=2)
    firing, resolved = receiver.delivered()
    common = {"version": 1, "instance_id": "tickops-test", "rule": "heartbeat_missing", "subject": "level1",
              "severity": "critical", "summary": "no IQFeed heartbeat for 4.2 s", "value": 4.2,
              "started_at": "2026-05-28T20:26:40.000Z", "fired_at": "2026-05-28T20:26:40.000Z"}
    assert firing.items() >= {**common, "state": "firing", "resolved_at": None}.items()
    assert resolved.items() >= {**common, "state": "resolved", "resolved_at": "2026-05-28T20:27:10.000Z"}.items()
    assert notifier.stats().channels["webhook"] == ChannelStats(sent=2)


def test_webhook_answering_500_is_retried_and_the_alert_delivered_once(webhook):
    receiver = webhook(500)
    notifier = Notifier([WebhookChannel(receiver.url, timeout_s=2)], instance_id="tickops-test",
                        retry_attempts=4, retry_initial_s=0.05)
    try:
        notifier.notify(_firing_then_resolved()[0])
        wait_until(lambda: notifier.stats().channels["webhook"].sent == 1, 5, "the retried delivery")
    finally:
        notifier.close(timeout_s=2)
    assert [(status, body["state"]) for status, body in receiver.requests] == [(500, "firing"), (200, "firing")]
    assert notifier.stats().channels["webhook"] == ChannelStats(sent=1, failed=0, dropped=0, retries=1)


def test_email_reaches_the_smtp_server_with_subject_body_and_recipients(smtp_server):
    controller, mailbox = smtp_server
    channel = EmailChannel("127.0.0.1", controller.port, "tickops@example.com",
                           ["ops@example.com", "oncall@example.com"], starttls=False,
                           username="tickops", password="s3cret", timeout_s=2)
    notifier = Notifier([channel], instance_id="tickops-test")
    try:
        notifier.notify(_firing_then_resolved()[0])
        wait_until(lambda: len(mailbox.envelopes) == 1, 5, "one email")
    finally:
        notifier.close(timeout_s=2)
    envelope = mailbox.envelopes[0]
    assert envelope.mail_from == "tickops@example.com"
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    message = message_from_bytes(envelope.original_content)
    assert message["Subject"] == "[TickOps FIRING] critical: heartbeat_missing level1 (tickops-test)"
    assert message["To"] == "ops@example.com, oncall@example.com"
    body = message.get_payload(decode=True).decode().replace("\r\n", "\n")  # SMTP lines end in CRLF
    assert body.startswith("no IQFeed heartbeat for 4.2 s\n")
    assert "state: firing" in body and "instance_id: tickops-test" in body
    assert notifier.stats().channels["email"] == ChannelStats(sent=1)


def test_email_with_a_wrong_password_fails_once_without_retrying(smtp_server):
    controller, mailbox = smtp_server
    channel = EmailChannel("127.0.0.1", controller.port, "tickops@example.com", ["ops@example.com"],
                           starttls=False, username="tickops", password="wrong", timeout_s=2)
    notifier = Notifier([channel], instance_id="tickops-test", retry_attempts=4, retry_initial_s=0.05)
    try:
        notifier.notify(_firing_then_resolved()[0])
        wait_until(lambda: notifier.stats().channels["email"].failed == 1, 5, "the refused login to count")
    finally:
        notifier.close(timeout_s=2)
    assert mailbox.envelopes == [] and notifier.stats().channels["email"].retries == 0


def _engine_settings(tmp_path, chdb_store, notify: dict, **extra):
    """An engine whose disk_free rule fires at once (any disk is under 100% free)."""
    return load_settings(data_dir=tmp_path, storage={"database": chdb_store.database}, backup={"enabled": False},
                         alerts={"disk_free_min_pct": 100}, notify=notify, **extra)


def test_unreachable_webhook_ends_failed_after_retries_without_blocking_evaluate_alerts(chdb_store, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/hooks/tickops"
    settings = _engine_settings(tmp_path, chdb_store, {"webhook_url": closed, "retry_attempts": 3,
                                                       "retry_initial_s": 0.4, "webhook_timeout_s": 1})
    engine = Engine(settings, store=chdb_store)
    try:
        engine.host.sample()
        engine.observe()  # warm up: the first market-hours check loads the XNYS calendar (~2 s)
        started = time.monotonic()
        changed = engine.evaluate_alerts()
        returned_s = time.monotonic() - started
        assert ("disk_free_low", "firing") in {(a.rule, a.state) for a in changed}
        assert returned_s < 0.4, f"evaluate_alerts took {returned_s:.2f} s: it waited for the webhook"
        wait_until(lambda: engine.notifier.stats().channels["webhook"].failed == 1, 5, "the delivery to give up")
        assert time.monotonic() - started >= 1.2  # two backoffs (0.4 s, 0.8 s) passed after the call returned
        assert engine.notifier.stats().channels["webhook"] == ChannelStats(sent=0, failed=1, dropped=0, retries=2)
    finally:
        engine.notifier.close(timeout_s=1)
        engine.producer.close()


def _disk_alerts(receiver: WebhookReceiver, state: str) -> list[dict]:
    return [b for b in receiver.delivered() if (b["rule"], b["state"]) == ("disk_free_low", state)]


@pytest.mark.timeout(60)
def test_running_engine_sends_firing_and_acknowledged_alerts_and_stop_ends_the_worker(webhook, chdb_store, tmp_path):
    receiver = webhook()
    settings = _engine_settings(tmp_path, chdb_store, {"webhook_url": receiver.url},
                                feed={"symbols": ["AAPL"], "simulator_rate": 50})
    engine = Engine(settings, store=chdb_store).start()
    try:
        engine.host.sample()  # the alert job (every 1 s) then sees the disk under the 100% threshold
        wait_until(lambda: _disk_alerts(receiver, "firing"), 5, "the alert job's firing notification")
        engine.acknowledge("disk_free_low", "data_dir", by="ana", note="pruning old segments")
        wait_until(lambda: _disk_alerts(receiver, "acknowledged"), 5, "the acknowledgement notification")
        assert _disk_alerts(receiver, "acknowledged")[0]["acknowledged_by"] == "ana"
        wait_until(lambda: engine.status().notifications.channels["webhook"].sent == 2, 5, "both deliveries counted")
        metrics = generate_latest(engine_registry(engine.status)).decode()
        assert 'tickops_notifications_total{channel="webhook",outcome="sent"} 2.0' in metrics
        assert 'tickops_notifications_total{channel="webhook",outcome="failed"} 0.0' in metrics
        assert "tickops_notifications_queued 0.0" in metrics
    finally:
        engine.stop(drain_timeout_s=2)
    assert len(_disk_alerts(receiver, "firing")) == 1
    assert not [t for t in threading.enumerate() if t.name.startswith("tickops-notify") and t.is_alive()]
