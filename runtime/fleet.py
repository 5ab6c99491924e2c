"""The collector fleet as one process sees it: the desired set, every instance's status, and (a collector)
its own share of the symbols.

    <prefix>.symbols (P partitions, compacted, key = symbol) ── KeyedTopicMember, group <prefix>-collectors
        the partitions the group assigns this instance, each read from its beginning to its end,
        then followed: Fleet.wanted() = the specs of those symbols ─► Engine._reconcile_symbols
    <prefix>.symbols, every partition ── KeyedTopicReader: the whole desired set (sidebar, capacity, seeding)
    <prefix>.fleet (compacted, key = instance id) ── KeyedTopicReader: every instance's latest status
        ◄── Fleet.publish(): a collector's status every fleet.status_interval_s and at each change

:class:`FleetControl` is what a process that does not collect needs (the attached dashboard): read and
write the desired set, read the statuses. :class:`Fleet` adds a collector's membership.

Kafka decides who watches what: a join, a clean leave or a crash (after the group's session
timeout) rebalances the partitions, and each symbol is watched by the one instance that owns its
partition. Nothing here needs Kafka to be up: topics are created and the group joined from a job,
retried while the broker is down; a collector that has not joined within ``fleet.join_timeout_s``
of its start watches the stored desired set alone (standalone) until it joins. The desired set is
seeded once, into a topic that never held a record, from the stored desired set (configured symbols
on a first start).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence

from bus.base import BusError
from bus.fleet_channel import ensure_status_topic, status_topic
from bus.keyed_topic import KeyedTopicMember, KeyedTopicReader, KeyedTopicWriter, ensure_compacted_topic
from bus.security import librdkafka_security
from config import Settings
from runtime.assignment import assignment_topic, collector_group, decode_table, encode_spec
from runtime.fleet_status import FleetView, InstanceStatus, Membership, decode_statuses, encode_status
from runtime.symbols import SymbolSpec

log = logging.getLogger(__name__)

POLL_S = 0.2
# A metadata request waits this long while Kafka is down: short, so the fleet job stays responsive (standalone
# switch, shutdown) and simply retries at its next run.
SETUP_TIMEOUT_S = 1.0
AuditSink = Callable[[str, str], None]  # (action, details) of this instance


class FleetControl:
    """The desired set (read whole, written) and every instance's status; ``poll`` from one thread."""

    def __init__(self, settings: Settings, *, stored: Callable[[], list[SymbolSpec]],
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        kafka = settings.kafka
        self.instance_id = settings.instance_id
        self.settings = settings.fleet
        self._bootstrap = kafka.bootstrap_servers
        self._replication = kafka.replication_factor
        self.topic = assignment_topic(kafka.topic_prefix)
        self.status_topic = status_topic(kafka.topic_prefix)
        self._stored = stored
        self._clock_ns = clock_ns
        self._security = librdkafka_security(kafka)
        self.desired_view = KeyedTopicReader(self._bootstrap, self.topic, client_id=f"{self.instance_id}-desired",
                                             security=self._security)
        self.status_view = KeyedTopicReader(self._bootstrap, self.status_topic, client_id=f"{self.instance_id}-fleet",
                                            security=self._security)
        self.writer = KeyedTopicWriter(self._bootstrap, client_id=self.instance_id, security=self._security)
        self.partitions = 0  # of the assignment topic, once known
        self._setup_error = ""

    def _set_up(self) -> bool:
        """Create the topics and start reading them; False (retried at the next poll) while Kafka is down."""
        if self.partitions:
            return True
        try:
            partitions = ensure_compacted_topic(self._bootstrap, self.topic, self.settings.assignment_partitions,
                                                replication_factor=self._replication, timeout_s=SETUP_TIMEOUT_S,
                                                security=self._security)
            ensure_status_topic(self._bootstrap, self.status_topic, replication_factor=self._replication,
                                timeout_s=SETUP_TIMEOUT_S, security=self._security)
        except BusError as exc:
            if str(exc) != self._setup_error:
                log.warning("fleet topics not reachable; retrying", extra={"error": str(exc)})
            self._setup_error = str(exc)
            return False
        self.desired_view.start(partitions)
        self.status_view.start(1)
        self.partitions = partitions
        self._ready()
        return True

    def _ready(self) -> None:
        """Called once the topics exist (a collector joins its group here)."""

    def poll(self) -> bool:
        """Read what arrived on the topics; False while they cannot be reached."""
        if not self._set_up():
            return False
        self.desired_view.poll(0)
        self.status_view.poll(0)
        return True

    def desired(self) -> list[SymbolSpec]:
        """The whole desired set, from the topic once read to its end (before that, the stored one)."""
        if not self.desired_view.caught_up:
            return self._stored()
        specs, _ = decode_table(self.desired_view.entries())
        return sorted(specs.values(), key=lambda spec: spec.symbol)

    def put(self, spec: SymbolSpec) -> None:
        """Write an operator's change to the desired set; raises :class:`bus.base.BusUnavailable` if it did not land."""
        record = encode_spec(spec)
        self.writer.put(self.topic, {spec.symbol: record})
        self.desired_view.note(spec.symbol, record)

    def view(self, membership: Membership | None = None) -> FleetView:
        statuses, writers, rejected = decode_statuses(self.status_view.entries())
        desired = sum(1 for spec in self.desired() if spec.level1) if self.desired_view.caught_up else None
        return FleetView(membership, statuses, desired, self._clock_ns(), self.settings.stale_after_s, rejected,
                         writers)

    def close(self, timeout_s: float = 5.0) -> None:
        self.writer.close(timeout_s)
        self.desired_view.close()
        self.status_view.close()


class Fleet(FleetControl):
    """A collector in the fleet (module doc): ``poll`` from one thread, the rest from any."""

    def __init__(self, settings: Settings, *, stored: Callable[[], list[SymbolSpec]], audit: AuditSink,
                 clock: Callable[[], float] = time.monotonic, clock_ns: Callable[[], int] = time.time_ns) -> None:
        super().__init__(settings, stored=stored, clock_ns=clock_ns)
        self._audit = audit
        self._clock = clock
        self.member = KeyedTopicMember(self._bootstrap, self.topic, collector_group(settings.kafka.topic_prefix),
                                       client_id=self.instance_id, session_timeout_ms=settings.kafka.session_timeout_ms,
                                       on_rebalance=self._rebalanced, security=self._security)
        self._seeded: bool | None = None  # None: not decided yet
        self._started_at: float | None = None
        self._standalone = False
        self._published_at = float("-inf")
        self._rejected: dict[str, str] = {}  # assignment records of this instance's partitions it cannot read
        self._assignments = 0
        self._taken_over: set[int] = set()  # partitions assigned after the first assignment: another's before
        self._lost = False  # the group session was lost (Kafka unreachable) and not assigned again yet
        self._back = False  # in the group again after a lost session or standalone, not yet told (came_back)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the join-timeout clock; everything that needs Kafka happens in :meth:`poll`."""
        self._started_at = self._clock()

    def _ready(self) -> None:
        self.member.subscribe()
        log.info("fleet joined", extra={"instance": self.instance_id, "topic": self.topic,
                                        "partitions": self.partitions, "group": self.member.group_id})

    def poll(self) -> bool:
        """Serve the group and read the topics; True when this instance's wanted symbols may have changed."""
        if not super().poll():
            return self._check_standalone()
        changed = self.member.poll(POLL_S)
        self._seed_if_new()
        return self._check_standalone() or changed

    def _check_standalone(self) -> bool:
        """Switch to or from standalone; True when that switched."""
        overdue = (not self.member.joined and self._started_at is not None
                   and self._clock() - self._started_at > self.settings.join_timeout_s)
        if overdue == self._standalone:
            return False
        self._standalone = overdue
        self._back = self._back or not overdue
        if overdue:
            log.warning("not in the collector group after fleet.join_timeout_s: watching the stored desired set "
                        "alone until Kafka answers", extra={"join_timeout_s": self.settings.join_timeout_s})
        else:
            log.info("joined the collector group; leaving standalone mode", extra={"instance": self.instance_id})
        self._audit("fleet_standalone" if overdue else "fleet_joined", f"group {self.member.group_id}")
        return True

    def _seed_if_new(self) -> None:
        """Seed the desired set into a topic that never held a record (its first start on Kafka)."""
        if self._seeded is not None or not self.desired_view.caught_up:
            return
        self._seeded = False
        if self.desired_view.entries() or self.desired_view.ever_written():
            return
        specs = [spec for spec in self._stored() if spec.level1 or spec.depth]
        if not specs:
            return
        try:
            self.writer.put(self.topic, {spec.symbol: encode_spec(spec) for spec in specs}, timeout_s=10)
        except BusError as exc:
            self._seeded = None  # decided again at the next poll
            log.warning("seeding the desired set failed; retrying", extra={"error": str(exc)})
            return
        self._seeded = True
        self._audit("fleet_seed", f"{self.topic}: {len(specs)} symbols from the stored desired set")
        log.info("desired set seeded into the assignment topic", extra={"topic": self.topic, "symbols": len(specs)})

    def _rebalanced(self, what: str, partitions: Sequence[int]) -> None:
        if what == "lost":
            self._lost = True
        elif what == "assigned" and self._lost:
            self._lost, self._back = False, True
        if what == "assigned":
            if self._assignments:
                self._taken_over |= set(partitions)
            self._assignments += 1
        elif what in ("revoked", "dropped"):
            self._taken_over -= set(partitions)
        details = f"{self.topic}: {what} {len(partitions)} partitions: {','.join(map(str, partitions))}"
        log.info("fleet partitions %s", what, extra={"instance": self.instance_id, "partitions": len(partitions),
                                                     "list": ",".join(map(str, partitions))})
        self._audit(f"fleet_{what}", details)

    def leave(self) -> None:
        """Leave the group so the others take this instance's symbols over now (not after the session timeout)."""
        self.member.close()

    def close(self, final: InstanceStatus | None = None, timeout_s: float = 5.0) -> None:  # type: ignore[override]
        """Publish the last status (state ``stopped``, waiting up to ``timeout_s`` for it) and close the
        readers; after :meth:`leave`."""
        if final is not None and self.partitions:
            self.writer.send(self.status_topic, self.instance_id, encode_status(final))
        super().close(timeout_s)

    # ------------------------------------------------------------------ what to watch

    @property
    def standalone(self) -> bool:
        return self._standalone

    @property
    def rules_owner(self) -> bool:
        """Evaluates the fleet-wide alert rules: owns partition 0, or runs standalone (nobody else may)."""
        return self._standalone or 0 in self.member.owned()

    def wanted(self) -> list[SymbolSpec]:
        """The specs of the symbols this instance should watch: its partitions' (standalone: every stored one)."""
        if self._standalone:
            return self._stored()
        specs, errors = decode_table(self.member.entries())
        self._log_rejected(errors)
        return sorted(specs.values(), key=lambda spec: spec.symbol)

    def came_back(self) -> bool:
        """True once after this instance is in the group again following a lost session or standalone: the
        others may have taken it for departed meanwhile (runtime/fleet_departures.py)."""
        back, self._back = self._back, False
        return back

    def taken_over(self, symbols: Iterable[str]) -> list[str]:
        """Those of ``symbols`` whose partition came from another instance (a takeover, not this one's start)."""
        taken = self._taken_over
        return sorted(s for s in symbols if self.member.partition_of(s) in taken)

    def _log_rejected(self, errors: dict[str, str]) -> None:
        for key in sorted(errors.keys() - self._rejected.keys()):
            log.error("assignment record rejected; that symbol is not watched until it is rewritten",
                      extra={"key": key, "error": errors[key]})
        self._rejected = errors

    # ------------------------------------------------------------------ status

    def publish(self, describe: Callable[[], InstanceStatus], *, force: bool = False) -> None:
        """Send this instance's status when it is due (``fleet.status_interval_s``) or ``force``d by a change."""
        now = self._clock()
        if not self.partitions or not (force or now - self._published_at >= self.settings.status_interval_s):
            return
        self._published_at = now
        self.writer.send(self.status_topic, self.instance_id, encode_status(describe()))

    def send_status(self, key: str, value: bytes) -> None:
        """Send another status record of this process (its embedded writer's) without waiting."""
        self.writer.send(self.status_topic, key, value)

    def membership(self) -> Membership:
        owned = self.member.owned()
        return Membership(
            group=self.member.group_id, partitions=tuple(sorted(owned)), partitions_total=self.partitions,
            unread=tuple(sorted(self.member.unread())), held=tuple(sorted(self.member.held())),
            joined=self.member.joined, standalone=self._standalone, rules_owner=self.rules_owner,
            wanted=sum(1 for spec in self.wanted() if spec.level1), rejected=dict(self._rejected),
        )

    def view(self, membership: Membership | None = None) -> FleetView:
        return super().view(membership or self.membership())
