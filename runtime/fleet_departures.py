"""The rules owner resolves the alerts of instances that left the fleet (runtime/fleet_alerts.py).

An instance's own alerts (``c2/level1``) are resolved only by the instance itself, when their condition
clears; a collector that was killed or stopped never does, and its alerts would stay active in storage,
on every dashboard and in every notification digest, for an instance that is not there. The fleet-wide
evaluator (the owner of assignment partition 0, exactly one) does it instead, once per departure: it
reads the stored active alerts, resolves those of instances the fleet view says are gone, stores and
notifies them with the reason, and records each in its audit chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from alerts.lifecycle import Alert
from alerts.store import AlertStore
from runtime.fleet_alerts import DEPARTED_REASON, resolve_departed
from runtime.fleet_status import FleetView
from storage.store import StorageError

log = logging.getLogger(__name__)

Notify = Callable[[list[Alert]], None]


class DepartureSweep:
    """Resolve each departed instance's alerts once; a departure not swept yet (storage down) is retried."""

    def __init__(self, alert_store: AlertStore, instance_id: str, *, actor: str, notify: Notify,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._alerts = alert_store
        self._instance_id = instance_id
        self._actor = actor
        self._notify = notify
        self._clock_ns = clock_ns
        self._swept: set[tuple[str, int]] = set()  # (instance, last heard of) already swept

    def sweep(self, view: FleetView) -> list[Alert]:
        """The alerts resolved now (none when no instance left since the last sweep)."""
        # Never itself: its previous run's "stopped" record is what the topic holds until its own first
        # status is read back, and the alerts it took in from that run are its own to resolve.
        departed = {instance: since for instance, since in view.departed.items()
                    if instance != self._instance_id and (instance, since) not in self._swept}
        if not departed:
            return []
        try:
            stored = self._alerts.active()
        except StorageError as exc:
            log.debug("alerts of departed instances not swept yet: storage unavailable", extra={"error": str(exc)})
            return []
        resolved = resolve_departed(stored, departed, self._clock_ns())
        self._alerts.save(resolved)
        for alert in resolved:
            self._alerts.audit(self._actor, "alert_resolved", f"{alert.rule}/{alert.subject}", DEPARTED_REASON)
            log.info("alert of a departed instance resolved", extra={"rule": alert.rule, "subject": alert.subject,
                                                                     "reason": DEPARTED_REASON})
        self._notify(resolved)
        self._swept |= set(departed.items())
        return resolved

    def forget(self) -> None:
        """Sweep every departure again (this instance just became the rules owner: a predecessor may not have)."""
        self._swept.clear()
