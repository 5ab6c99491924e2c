"""Poll other processes' ``/healthz`` (collectors, writers) for a dashboard that runs apart from them.

    HealthProbes.poll (a dashboard job) ──probe(url)──► GET /healthz ──parse_health──► ProbeResult per URL
    pages read HealthProbes.results(): never a network call during a render

A process that does not answer is shown as ``unreachable`` with the error; a 503 still carries the
JSON verdict (``down`` with reasons), which is read like a 200.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec

UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class ProbeResult:
    url: str
    state: str  # ok / degraded / down as the process says, or "unreachable"
    reasons: tuple[str, ...] = ()
    details: dict[str, object] = field(default_factory=dict)
    checked_ns: int = 0
    error: str = ""  # why it could not be read (unreachable, not our JSON)


def healthz_url(base: str) -> str:
    """``http://collector:9464`` or ``http://collector:9464/healthz`` -> the latter."""
    base = base.rstrip("/")
    return base if base.endswith("/healthz") else base + "/healthz"


def parse_health(url: str, body: bytes, checked_ns: int) -> ProbeResult:
    """The verdict in a ``/healthz`` body (runtime/health.py, storage/writer_health.py); a body that is not
    one is reported as unreachable with what was wrong, never raised."""
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        return ProbeResult(url, UNREACHABLE, checked_ns=checked_ns, error=f"not a health answer: {exc}")
    if not isinstance(payload, dict) or payload.get("status") not in ("ok", "degraded", "down"):
        return ProbeResult(url, UNREACHABLE, checked_ns=checked_ns, error=f"not a health answer: {body[:200]!r}")
    details = payload.get("details")
    reasons = payload.get("reasons")
    return ProbeResult(url, payload["status"], tuple(str(r) for r in reasons) if isinstance(reasons, list) else (),
                       details if isinstance(details, dict) else {}, checked_ns)


def probe(url: str, timeout_s: float, clock_ns: Callable[[], int] = time.time_ns) -> ProbeResult:
    target = healthz_url(url)
    try:
        with urllib.request.urlopen(target, timeout=timeout_s) as response:  # noqa: S310 - operator-configured URL
            body = response.read()
    except urllib.error.HTTPError as exc:  # 503 = down, with its JSON reasons
        body = exc.read()
    except (OSError, ValueError) as exc:
        return ProbeResult(url, UNREACHABLE, checked_ns=clock_ns(), error=str(exc))
    return parse_health(url, body, clock_ns())


class HealthProbes:
    """The latest result per configured URL; :meth:`poll` asks them all at once, each within ``timeout_s``."""

    def __init__(self, urls: list[str], *, timeout_s: float = 2.0,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._urls = list(dict.fromkeys(urls))
        self._timeout_s = timeout_s
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._results = {url: ProbeResult(url, UNREACHABLE, error="not asked yet") for url in self._urls}

    def poll(self) -> None:
        if not self._urls:
            return
        with ThreadPoolExecutor(max_workers=min(8, len(self._urls)), thread_name_prefix="healthz-probe") as pool:
            found = list(pool.map(lambda url: probe(url, self._timeout_s, self._clock_ns), self._urls))
        with self._lock:
            self._results.update({result.url: result for result in found})

    def results(self) -> list[ProbeResult]:
        with self._lock:
            return [self._results[url] for url in self._urls]
