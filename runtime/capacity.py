"""Capacity: which of its wanted symbols an instance watches, and whether the fleet can watch them all.

Hashing, not the watch limit, decides an instance's share of the desired symbols (many more
assignment partitions than instances keep the shares close to even), so a share can exceed the
instance's ``feed.watch_limit`` (the IQFeed account's): then the instance watches up to its limit,
critical symbols first and the ones it already watches next (no churn), and reports the rest as
unwatched. The fleet as a whole is short when the responsive instances' limits add up to less than
the desired set, and one failure away from short when the others' limits would.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass

from runtime.symbols import SymbolSpec


@dataclass(frozen=True)
class WatchPlan:
    watch: tuple[str, ...]  # symbols to watch, in the order to start them (critical first)
    over_limit: dict[str, str]  # wanted but beyond the limit -> why


def plan_watches(wanted: Iterable[SymbolSpec], watched: Set[str], limit: int) -> WatchPlan:
    level1 = [spec for spec in wanted if spec.level1]
    ranked = sorted(level1, key=lambda spec: (not spec.critical, spec.symbol not in watched, spec.symbol))
    reason = f"over feed.watch_limit ({limit}): {len(level1)} symbols wanted by this instance"
    return WatchPlan(tuple(spec.symbol for spec in ranked[:limit]), {spec.symbol: reason for spec in ranked[limit:]})


@dataclass(frozen=True)
class FleetCapacity:
    wanted: int  # symbols the desired set asks to watch (level1)
    instances: int  # responsive collectors
    capacity: int  # the sum of their watch limits
    after_one_loss: int | None  # the capacity left when the largest of them fails; None with fewer than two

    @property
    def short_by(self) -> int:
        return max(0, self.wanted - self.capacity)

    @property
    def short_after_one_loss_by(self) -> int:
        return 0 if self.after_one_loss is None else max(0, self.wanted - self.after_one_loss)

    @property
    def load(self) -> float:
        """Wanted symbols over capacity (0 when nothing responds)."""
        return self.wanted / self.capacity if self.capacity else 0.0


def assess_capacity(wanted: int, limits: Iterable[int]) -> FleetCapacity:
    """``limits``: the watch limit of each responsive collector."""
    limits = sorted(limits)
    capacity = sum(limits)
    return FleetCapacity(wanted, len(limits), capacity, capacity - limits[-1] if len(limits) >= 2 else None)
