"""The fleet's symbol assignment on the real broker: members of the collector group over the assignment
topic, each polled from its own thread as the engine's fleet job does. Once the group settles after a
join or a leave, every desired symbol is wanted by exactly one member, never by none or two."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from config import load_settings
from runtime.fleet import Fleet
from runtime.fleet_status import InstanceStatus
from runtime.symbols import SymbolSpec
from tests.conftest import unique_name
from tests.integration.pipeline import delete_topics, wait_until

pytestmark = pytest.mark.timeout(180)
PARTITIONS = 16
SYMBOLS = [f"F{i:03d}" for i in range(80)]


def spec(symbol: str, *, level1: bool = True) -> SymbolSpec:
    return SymbolSpec(symbol, level1, False, 0.0, 1, "test")


class Member:
    """A Fleet polled from its own thread, publishing a status as the engine would."""

    def __init__(self, bootstrap: str, prefix: str, name: str, stored: list[SymbolSpec] | None = None) -> None:
        settings = load_settings(instance_id=name, bus={"kind": "kafka"},
                                 kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix,
                                        "session_timeout_ms": 6000},
                                 fleet={"assignment_partitions": PARTITIONS, "status_interval_s": 0.5,
                                        "stale_after_s": 5})
        self.name = name
        self.audit: list[tuple[str, str]] = []
        self.fleet = Fleet(settings, stored=lambda: list(stored or []), audit=lambda *entry: self.audit.append(entry))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"fleet-{name}", daemon=True)
        self.fleet.start()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.fleet.publish(self.status, force=self.fleet.poll())

    def status(self, state: str = "running") -> InstanceStatus:
        m = self.fleet.membership()
        wanted = tuple(s.symbol for s in self.fleet.wanted() if s.level1)
        return InstanceStatus(self.name, f"{self.name}@1", state, "ok", (), m.partitions, m.partitions_total,
                              m.rules_owner, m.standalone, 500, len(wanted), wanted, {}, None, 0,
                              self.fleet._clock_ns())

    def wanted(self) -> set[str]:
        return {s.symbol for s in self.fleet.wanted() if s.level1}

    def leave(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.fleet.leave()
        self.fleet.close(self.status("stopped"))


def settled(members: list[Member]) -> bool:
    owned = [m.fleet.member.owned() for m in members]
    counts = Counter(p for partitions in owned for p in partitions)
    return (all(m.fleet.member.joined and not m.fleet.member.unread() for m in members)
            and set(counts) == set(range(PARTITIONS)) and set(counts.values()) == {1})


def assert_each_symbol_wanted_once(members: list[Member], desired: set[str]) -> None:
    counts = Counter(symbol for m in members for symbol in m.wanted())
    assert set(counts) == desired, (desired - set(counts), set(counts) - desired)
    assert set(counts.values()) == {1}, [s for s, n in counts.items() if n > 1]


@pytest.fixture
def prefix(kafka_bootstrap):
    name = unique_name("fleet")
    yield name
    delete_topics(kafka_bootstrap, name)


def test_joins_and_leaves_rebalance_the_symbols_so_each_is_wanted_by_exactly_one_instance(kafka_bootstrap, prefix):
    first = Member(kafka_bootstrap, prefix, "a", stored=[spec(s) for s in SYMBOLS])  # seeds the empty topic
    members = [first, Member(kafka_bootstrap, prefix, "b")]
    try:
        wait_until(lambda: settled(members) and sum(len(m.wanted()) for m in members) == len(SYMBOLS), 60,
                   "two members settled over the seeded symbols")
        assert_each_symbol_wanted_once(members, set(SYMBOLS))
        assert all(m.wanted() for m in members), "both members got a share"

        members.append(Member(kafka_bootstrap, prefix, "c"))  # a join moves some partitions to the newcomer
        wait_until(lambda: settled(members) and members[2].wanted(), 60, "the group settled after a join")
        assert_each_symbol_wanted_once(members, set(SYMBOLS))

        # The desired set changes on the topic: a stop and a new symbol reach their owners only.
        first.fleet.put(spec("F007", level1=False))
        first.fleet.put(spec("NEW1"))
        desired = (set(SYMBOLS) - {"F007"}) | {"NEW1"}
        wait_until(lambda: Counter(s for m in members for s in m.wanted()) == Counter(desired), 30,
                   "the change applied by the owners")

        leaving = members.pop(0)  # a clean leave: the others take its partitions at once
        moved = leaving.wanted()
        leaving.leave()
        wait_until(lambda: settled(members), 30, "the group settled after a leave")
        assert_each_symbol_wanted_once(members, desired)
        assert moved and moved <= members[0].wanted() | members[1].wanted()
        assert any(action == "fleet_revoked" for action, _ in leaving.audit), "rebalances are audited"

        # Every member's status reaches the channel; the one that left says it stopped.
        fleet = members[0].fleet
        wait_until(lambda: {(s.instance_id, s.state) for s in fleet.view().instances} ==
                   {("a", "stopped"), ("b", "running"), ("c", "running")}
                   and sum(s.wanted for s in fleet.view().live) == len(desired), 20,
                   "the statuses on the fleet topic, as of after the leave")
        view = fleet.view()
        assert view.orphaned == () and view.double_owned == () and view.desired == len(desired)
        assert sorted(p for s in view.live for p in s.partitions) == list(range(PARTITIONS))
    finally:
        for member in members:
            member.leave()


def test_the_desired_set_is_seeded_once_into_a_topic_that_never_held_a_record(kafka_bootstrap, prefix):
    first = Member(kafka_bootstrap, prefix, "a", stored=[spec("XX"), spec("YY")])
    try:
        wait_until(lambda: first.wanted() == {"XX", "YY"}, 60, "the stored set seeded and watched")
        assert [a for a in first.audit if a[0] == "fleet_seed"] == [
            ("fleet_seed", f"{prefix}.symbols: 2 symbols from the stored desired set")]
        first.fleet.put(spec("YY", level1=False))
        wait_until(lambda: first.wanted() == {"XX"}, 30, "the stop applied")
    finally:
        first.leave()
    # A later instance with another stored set finds the topic written: the topic, not its storage, decides.
    later = Member(kafka_bootstrap, prefix, "b", stored=[spec("ZZ")])
    try:
        wait_until(lambda: later.wanted() == {"XX"} and later.fleet.desired_view.caught_up, 60,
                   "the topic's desired set watched and read whole")
        assert not [a for a in later.audit if a[0] == "fleet_seed"]
        assert {s.symbol: s.level1 for s in later.fleet.desired()} == {"XX": True, "YY": False}
    finally:
        later.leave()
