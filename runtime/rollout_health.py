"""What a staged rollout judges a stage by, read from the process the dashboard holds.

Embedded, the engine's own live state says which symbols had events, and its status whether the
pipeline is behind (events spooled while the bus is down, the writer retrying a write, storage
unavailable). Attached to collectors that run apart, the evidence is storage (events of the stage's
symbols received since it started, runtime/attached.py has no feed) and the collectors' published
health; the alerts are the ones they stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from alerts.lifecycle import AlertBook
from runtime.rollout import StageHealth
from runtime.status import EngineStatus
from storage.received import received_since
from storage.store import StorageError

if TYPE_CHECKING:
    from runtime.attached import AttachedRuntime
    from runtime.engine import Engine


def critical_firing(book: AlertBook) -> tuple[str, ...]:
    return tuple(f"{a.rule} {a.subject}".strip() for a in book.active()
                 if a.state == "firing" and a.severity == "critical")


def pipeline_behind(status: EngineStatus) -> tuple[str, ...]:
    reasons: list[str] = []
    if status.producer.spool.unacked:
        reasons.append(f"{status.producer.spool.unacked:,} events spooled: the bus has not taken them yet")
    if status.writer is not None and status.writer.retrying:
        reasons.append(f"the writer is retrying a write: {status.writer.last_error or 'no error text'}")
    if not status.storage.ready:
        reasons.append("storage unavailable")
    return tuple(reasons)


def engine_health(engine: Engine, symbols: Sequence[str], since_ns: int) -> StageHealth:
    """``since_ns`` is not needed here: live state keeps each symbol's latest receive time, which the
    rollout compares with the symbol's own start."""
    live = engine.live.snapshot()
    status = engine.status()
    last = {s: live[s].last_event_recv_ns for s in symbols
            if s in live and live[s].last_event_recv_ns is not None}
    wanted = set(symbols)
    not_watched = {s: why for s, why in {**status.unwatched, **status.rejected_symbols}.items() if s in wanted}
    return StageHealth(last, critical_firing(engine.alert_book), pipeline_behind(status), not_watched)


def attached_health(runtime: AttachedRuntime, symbols: Sequence[str], since_ns: int) -> StageHealth:
    behind: list[str] = []
    last: dict[str, int] = {}
    if not runtime.storage.ready:
        behind.append("storage unavailable")
    else:
        try:
            last = received_since(runtime.store, symbols, since_ns)
        except StorageError as exc:
            behind.append(f"storage did not answer: {exc}")
    view = runtime.fleet_view()
    wanted = set(symbols)
    not_watched = {s: f"{instance.instance_id}: {why}" for instance in view.live
                   for s, why in instance.unwatched.items() if s in wanted}
    for instance in view.live:
        if instance.health != "ok":
            behind.append(f"collector {instance.instance_id} is {instance.health}: "
                          + ("; ".join(instance.reasons) or "no reason given"))
    return StageHealth(last, critical_firing(runtime.alert_book), tuple(behind), not_watched)
