"""``/metrics`` (Prometheus text) and ``/healthz`` (JSON ok/degraded/down with reasons).

Load balancers and restart scripts poll ``/healthz``; it answers 200 for ok and degraded
(still serving, someone should look) and 503 for down, so a supervisor restarts only a
process that is really broken.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

import msgspec
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthState = Literal["ok", "degraded", "down"]


@dataclass(frozen=True)
class Health:
    state: HealthState
    reasons: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)


def combine(checks: list[tuple[HealthState, str]]) -> Health:
    """Worst state wins; every non-ok check contributes its reason."""
    order = {"ok": 0, "degraded": 1, "down": 2}
    worst: HealthState = "ok"
    reasons = []
    for state, reason in checks:
        if order[state] > order[worst]:
            worst = state
        if state != "ok":
            reasons.append(reason)
    return Health(worst, tuple(reasons))


class MonitoringServer:
    def __init__(self, host: str, port: int, registry: CollectorRegistry, health: Callable[[], Health]) -> None:
        registry_ = registry
        health_ = health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.startswith("/metrics"):
                    body, status, ctype = generate_latest(registry_), 200, CONTENT_TYPE_LATEST
                elif self.path.startswith("/healthz"):
                    current = health_()
                    body = msgspec.json.encode(
                        {"status": current.state, "reasons": list(current.reasons), "details": current.details}
                    )
                    status, ctype = (503 if current.state == "down" else 200), "application/json"
                else:
                    body, status, ctype = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                """Requests are not worth a log line each."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="monitoring-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()
        log.info("monitoring endpoint listening", extra={"port": self.port})

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
