"""Per-minute component health in storage (migration 5): what availability is computed from after a restart.

Rows are per (instance, component, minute); a minute written twice (the process restarted
within it) is read back as ``min(ok)``, so one bad sample in it still makes it bad.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.store import Store, sql_string

TABLE = "health_minutes"
COLUMNS = ("instance_id", "component", "minute_ns", "ok", "samples", "recorded_ns")


@dataclass(frozen=True)
class HealthMinute:
    component: str
    minute_ns: int
    ok: bool
    samples: int


def save_minutes(store: Store, instance_id: str, minutes: Sequence[HealthMinute], recorded_ns: int) -> int:
    """Insert ``minutes`` (one statement); raises ``StorageError`` and then nothing is stored."""
    return store.insert_columns(TABLE, COLUMNS, [
        [instance_id] * len(minutes),
        [m.component for m in minutes],
        [m.minute_ns for m in minutes],
        [int(m.ok) for m in minutes],
        [m.samples for m in minutes],
        [recorded_ns] * len(minutes),
    ])


def load_minutes(store: Store, instance_id: str, since_ns: int) -> list[tuple[str, int, bool]]:
    """(component, minute_ns, ok) of ``instance_id`` from ``since_ns`` on; raises ``StorageError``."""
    rows = store.query(
        f"SELECT component, minute_ns, min(ok) FROM {store.table(TABLE)} "
        f"WHERE instance_id = {sql_string(instance_id)} AND minute_ns >= {int(since_ns)} "
        f"GROUP BY component, minute_ns"
    )
    return [(str(component), int(minute), bool(ok)) for component, minute, ok in rows]
