"""Hot standby: each critical symbol has exactly one standby besides its owner, the same whoever computes
it, kept through the owner's death and takeover, and fitted into the room the watch limit leaves."""

from __future__ import annotations

from collections import Counter

from runtime.capacity import plan_watches
from runtime.fleet_status import FleetView, InstanceStatus
from runtime.standby import add_standby, standby_for, standby_specs
from runtime.symbols import SymbolSpec

NOW = 1_000 * 10**9
CRITICAL = [f"C{i:02d}" for i in range(40)]


def spec(symbol: str, *, critical: bool = True, level1: bool = True) -> SymbolSpec:
    return SymbolSpec(symbol, level1, False, 0.0, 1, "test", critical)


def status(name: str, watched: list[str], standby: list[str] = (), *, age_s: float = 0.0,
           state: str = "running") -> InstanceStatus:
    return InstanceStatus(name, f"{name}@1", state, "ok", (), (), 8, False, False, 500, len(watched),
                          tuple(watched), {}, None, 0, NOW - int(age_s * 1e9), tuple(standby))


def view(*statuses: InstanceStatus) -> FleetView:
    return FleetView(None, statuses, None, NOW, 20.0)


def shares(names: list[str]) -> dict[str, list[str]]:
    """Owners dealt round-robin, as the group might."""
    return {name: CRITICAL[i::len(names)] for i, name in enumerate(names)}


def test_every_critical_symbol_has_one_standby_other_than_its_owner_agreed_by_every_instance():
    names = ["c1", "c2", "c3"]
    owned = shares(names)
    desired = [spec(s) for s in CRITICAL] + [spec("PLAIN", critical=False)]
    fleet = view(*(status(n, owned[n]) for n in names))
    chosen = {n: {s.symbol for s in standby_specs(n, desired, owned[n], fleet)} for n in names}
    counts = Counter(s for picked in chosen.values() for s in picked)
    assert set(counts) == set(CRITICAL) and set(counts.values()) == {1}, "one standby per critical symbol"
    assert all(not chosen[n] & set(owned[n]) for n in names), "an owner never stands by for itself"
    assert all(chosen.values()), "rendezvous hashing spreads the standby load"


def test_the_standby_keeps_its_role_through_the_owners_death_and_whoever_takes_over():
    names = ["c1", "c2", "c3", "c4"]
    owned = shares(names)
    desired = [spec(s) for s in CRITICAL]

    def standbys(fleet: FleetView, alive: list[str], now_owned: dict[str, list[str]]) -> dict[str, str]:
        return {s.symbol: n for n in alive for s in standby_specs(n, desired, now_owned[n], fleet)}

    before = standbys(view(*(status(n, owned[n]) for n in names)), names, owned)
    dead = "c1"
    alive = [n for n in names if n != dead]
    for index, symbol in enumerate(owned[dead]):
        # The group gives the dead owner's symbol to some survivor; its stale-but-fresh status still claims it.
        new_owner = alive[index % len(alive)]
        now_owned = {n: owned[n] + ([symbol] if n == new_owner else []) for n in alive}
        # Statuses list standby watches among the watched ones, marked as standby.
        stands = {n: [s for s, by in before.items() if by == n and s not in now_owned.get(n, ())] for n in names}
        statuses = [status(n, now_owned[n] + stands[n], stands[n]) for n in alive]
        killed = stands[dead]
        during = standbys(view(status(dead, owned[dead] + killed, killed), *statuses), alive, now_owned)
        after = standbys(view(status(dead, owned[dead] + killed, killed, age_s=60), *statuses), alive, now_owned)
        # The dead owner's status stale and the new owner's not read yet: nobody claims it, the standby keeps it.
        current = {n: {s for s, by in before.items() if by == n} for n in alive}
        gap = {s.symbol: n for n in alive for s in standby_specs(n, desired, owned[n], view(
            status(dead, owned[dead] + killed, killed, age_s=60), *(status(m, owned[m]) for m in alive)), current[n])}
        assert gap.get(symbol) == before[symbol] or before[symbol] == dead, symbol
        if before[symbol] != new_owner:
            assert during[symbol] == after[symbol] == before[symbol], symbol
        else:  # the standby became the owner: another survivor stands by now
            assert during[symbol] == after[symbol] != new_owner


def test_an_instance_not_yet_on_the_status_topic_still_counts_itself_and_unresponsive_ones_do_not_count():
    fleet = view(status("c1", ["A"]), status("old", [], age_s=60), status("gone", [], state="stopped"))
    assert standby_for("A", {"c1"}, ["c1", "c2"]) == "c2"
    assert [s.symbol for s in standby_specs("c2", [spec("A")], [], fleet)] == ["A"]
    assert standby_specs("c1", [spec("A")], ["A"], fleet) == []
    assert standby_for("A", {"c1"}, ["c1"]) is None, "alone, nobody stands by"


def test_stopped_and_plain_symbols_get_no_standby():
    fleet = view(status("c1", ["A", "B"]))
    assert standby_specs("c2", [spec("A", level1=False), spec("B", critical=False)], [], fleet) == []


def test_standby_watches_use_only_the_room_the_owned_symbols_leave():
    plan = plan_watches([spec("O1", critical=False), spec("O2", critical=False)], set(), limit=3)
    both = add_standby(plan, [spec("S1"), spec("S2")], limit=3)
    assert both.plan.watch == ("O1", "O2", "S1") and both.standby == {"S1"} and both.unfitted == ("S2",)
    assert both.plan.over_limit == {}, "a standby that does not fit is not reported as an unwatched symbol"
    full = add_standby(plan_watches([spec(s, critical=False) for s in "ABCD"], set(), limit=3), [spec("S1")], 3)
    assert full.plan.watch == ("A", "B", "C") and full.standby == frozenset() and set(full.plan.over_limit) == {"D"}


def test_a_symbol_nobody_claims_yet_gets_no_new_standby_since_its_owner_may_not_have_read_it_yet():
    fleet = view(status("c1", []), status("c2", []))
    assert standby_specs("c1", [spec("A")], [], fleet) == [] and standby_specs("c2", [spec("A")], [], fleet) == []
    claimed_by_c1 = view(status("c1", ["A"]), status("c2", []))
    assert [s.symbol for s in standby_specs("c2", [spec("A")], [], claimed_by_c1)] == ["A"]
