"""Hot standby of critical symbols: which collector, besides its owner, also watches a critical symbol.

Kafka's group already says who owns each symbol (the owner of its assignment partition) and the fleet
status topic already says who is responsive; the standby is derived from those two, not negotiated.
Every instance ranks the responsive instances for a symbol by rendezvous hashing of (symbol, instance
id) and the best-ranked one that does not watch it as its own (statuses list watched and standby
symbols apart) stands by. Each instance computes the same answer from
the same view, and the answer is stable: when the owner dies its status ages out, the ranking of the
others does not change, so the standby keeps watching through the takeover (whoever the group then makes
owner). A joining or leaving instance moves only the symbols it ranks first for.

The standby's watches come after its own share: they use the room its watch limit leaves
(``add_standby``), so standing by never costs an owned symbol its watch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass

from runtime.capacity import WatchPlan
from runtime.fleet_status import FleetView
from runtime.symbols import SymbolSpec


def _rank(symbol: str, instance_id: str) -> bytes:
    """A hash that every process computes alike (Python's ``hash`` is salted per process)."""
    return hashlib.blake2b(f"{symbol}\x00{instance_id}".encode(), digest_size=8).digest()


def standby_for(symbol: str, owners: Set[str], instances: Iterable[str]) -> str | None:
    """The instance that stands by for ``symbol``: the best-ranked of ``instances`` that does not own it."""
    candidates = [i for i in set(instances) if i not in owners]
    return max(candidates, key=lambda i: _rank(symbol, i)) if candidates else None


def claimed(view: FleetView, instance_id: str) -> dict[str, set[str]]:
    """Symbol -> the other responsive instances that watch it as their own (not as standby). During a
    takeover the dead owner's fresh status and the new owner's both claim it: both are excluded, so the
    standby, ranked above the new owner before, stays the standby."""
    found: dict[str, set[str]] = {}
    for status in view.live:
        if status.instance_id == instance_id:
            continue  # this instance knows its own share better than its last published status
        for symbol in set(status.watched) - set(status.standby):
            found.setdefault(symbol, set()).add(status.instance_id)
    return found


def standby_specs(instance_id: str, desired: Iterable[SymbolSpec], owned: Iterable[str], view: FleetView,
                  current: Set[str] = frozenset()) -> list[SymbolSpec]:
    """The critical symbols ``instance_id`` stands by for: wanted (level1), not its own, and ranked to it
    among the responsive instances (itself included even before its first status is read back).

    A symbol nobody claims yet gets no new standby: its owner may be this very instance, not having read
    its partition yet (it would hold back the quotes it is the one to store). One this instance already
    stands by for is kept while nobody claims it: its owner died and the group has not handed it on yet."""
    mine = set(owned)
    instances = {status.instance_id for status in view.live} | {instance_id}
    owners = claimed(view, instance_id)
    return sorted((spec for spec in desired
                   if spec.critical and spec.level1 and spec.symbol not in mine
                   and (spec.symbol in owners or spec.symbol in current)
                   and standby_for(spec.symbol, owners.get(spec.symbol, set()), instances) == instance_id),
                  key=lambda spec: spec.symbol)


@dataclass(frozen=True)
class StandbyPlan:
    plan: WatchPlan  # the instance's own plan with the standby watches appended
    standby: frozenset[str]  # the symbols watched only as standby
    unfitted: tuple[str, ...]  # standby symbols beyond the watch limit (their owner still watches them)


def add_standby(plan: WatchPlan, standby: Sequence[SymbolSpec], limit: int) -> StandbyPlan:
    """Append standby watches to an instance's own plan in the room its watch limit leaves; those that do
    not fit are not watched here (never displacing an owned symbol) and are not reported unwatched either:
    their owner watches them."""
    own = set(plan.watch)
    extra = [spec.symbol for spec in standby if spec.symbol not in own]
    room = max(0, limit - len(plan.watch))
    fitted = tuple(extra[:room])
    return StandbyPlan(WatchPlan(plan.watch + fitted, plan.over_limit), frozenset(fitted), tuple(extra[room:]))
