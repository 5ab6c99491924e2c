"""The fleet status channel: each instance's status on ``<prefix>.fleet``, and the fleet as a reader sees it.

Every collector publishes an :class:`InstanceStatus`, keyed by its instance id, every
``fleet.status_interval_s`` and whenever what it owns or watches changes. The topic is compacted, so a
reader that starts later (the dashboard attached to a headless fleet) reads each instance's latest
status from the topic's beginning. The status carries what the Fleet page and the capacity rule need:
health, owned partitions, symbols watched and not, writer lag. It is JSON, readable with any Kafka tool.
Writers publish on the same topic under keys of their own (storage/writer_status.py): a reader tells
the two apart by key, and :class:`FleetView` carries both.

Liveness is judged by age: an instance killed with SIGKILL says nothing more, its last status just
grows old, and past ``fleet.stale_after_s`` it no longer counts as responsive (nor in the capacity).
A clean stop publishes a last status in state ``stopped``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

from bus.json_record import dump_record, load_record
from monitoring.http import Health
from runtime.capacity import FleetCapacity, assess_capacity
from storage.writer_status import WriterStatus, WriterStatusError, decode_writer_status, is_writer_key

if TYPE_CHECKING:  # EngineStatus carries a FleetView: a run-time import would be circular
    from runtime.status import EngineStatus

STATUS_VERSION = 1
InstanceState = Literal["running", "stopped"]


class FleetStatusError(ValueError):
    """A record of the fleet status topic cannot be read; the message names the key and what is wrong."""


@dataclass(frozen=True)
class Membership:
    """This instance's place in the collector group."""

    group: str
    partitions: tuple[int, ...]  # assignment partitions it owns (or holds since a lost session)
    partitions_total: int
    unread: tuple[int, ...] = ()  # owned but not yet read to their end: their symbols are not watched yet
    held: tuple[int, ...] = ()  # kept since the group session was lost, until the next assignment
    joined: bool = False
    standalone: bool = False  # not joined within fleet.join_timeout_s: watching the stored desired set alone
    rules_owner: bool = False  # owns partition 0: evaluates the fleet-wide alert rules
    wanted: int = 0  # level1 symbols of its partitions
    rejected: dict[str, str] = field(default_factory=dict)  # assignment records it could not read -> why


@dataclass(frozen=True)
class InstanceStatus:
    instance_id: str
    source: str
    state: InstanceState
    health: str  # ok / degraded / down (runtime/health.py)
    reasons: tuple[str, ...]
    partitions: tuple[int, ...]
    partitions_total: int
    rules_owner: bool
    standalone: bool
    watch_limit: int
    wanted: int
    watched: tuple[str, ...]
    unwatched: dict[str, str]
    writer_lag: int | None  # None when the instance runs no writer
    started_ns: int
    updated_ns: int
    standby: tuple[str, ...] = ()  # of ``watched``, those watched only as hot standby (docs/HA.md)

    def age_s(self, now_ns: int) -> float:
        return max(0.0, (now_ns - self.updated_ns) / 1e9)


def describe_instance(instance_id: str, status: EngineStatus, health: Health, *, watch_limit: int,
                      state: InstanceState, now_ns: int) -> InstanceStatus:
    """This instance's status from its engine's snapshot (embedded, it is the whole fleet)."""
    membership = status.fleet.membership if status.fleet is not None else None
    return InstanceStatus(
        instance_id=instance_id, source=status.source, state=state, health=health.state, reasons=health.reasons,
        partitions=membership.partitions if membership else (),
        partitions_total=membership.partitions_total if membership else 0,
        rules_owner=membership.rules_owner if membership else True,
        standalone=membership.standalone if membership else False,
        watch_limit=watch_limit,
        wanted=membership.wanted if membership else len(status.watched) + len(status.unwatched),
        watched=tuple(sorted(status.watched)), unwatched=dict(status.unwatched),
        writer_lag=status.writer.total_lag if status.writer is not None else None,
        started_ns=status.started_ns, updated_ns=now_ns,
        standby=tuple(sorted(status.redundancy.standby)) if status.redundancy is not None else (),
    )


def encode_status(status: InstanceStatus) -> bytes:
    return dump_record(STATUS_VERSION, asdict(status))


def decode_status(key: str, payload: bytes) -> InstanceStatus:
    data = load_record(payload, STATUS_VERSION, what=f"status of {key!r}", kind="status", error=FleetStatusError)
    try:
        status = InstanceStatus(**{**data, "reasons": tuple(data["reasons"]), "partitions": tuple(data["partitions"]),
                                   "watched": tuple(data["watched"]), "standby": tuple(data.get("standby", ()))})
    except (TypeError, KeyError) as exc:
        raise FleetStatusError(f"status of {key!r} lacks or mistypes a field ({exc})") from None
    if status.instance_id != key:
        raise FleetStatusError(f"status keyed {key!r} names instance {status.instance_id!r}")
    return status


def decode_statuses(entries: Mapping[str, bytes]) -> tuple[tuple[InstanceStatus, ...], tuple[WriterStatus, ...],
                                                            dict[str, str]]:
    """The status topic's rows as collectors' and writers' statuses, by key; unreadable ones key -> why."""
    collectors: list[InstanceStatus] = []
    writers: list[WriterStatus] = []
    rejected: dict[str, str] = {}
    for key, payload in sorted(entries.items()):
        try:
            if is_writer_key(key):
                writers.append(decode_writer_status(key, payload))
            else:
                collectors.append(decode_status(key, payload))
        except (FleetStatusError, WriterStatusError) as exc:
            rejected[key] = str(exc)
    return tuple(collectors), tuple(writers), rejected


@dataclass(frozen=True)
class FleetView:
    """The fleet as one process sees it: its own membership and every instance's latest status."""

    membership: Membership | None  # None when this process is not a member (embedded, or only a dashboard)
    instances: tuple[InstanceStatus, ...]  # by instance id
    desired: int | None  # level1 symbols of the desired set; None until the topic was read to its end
    now_ns: int
    stale_after_s: float
    rejected: dict[str, str] = field(default_factory=dict)  # status records that could not be read -> why
    writers: tuple[WriterStatus, ...] = ()  # every writer's latest status (embedded or a process of its own)

    def responsive(self, status: InstanceStatus | WriterStatus) -> bool:
        return status.state == "running" and status.age_s(self.now_ns) <= self.stale_after_s

    def gone_since_ns(self, status: InstanceStatus | WriterStatus) -> int | None:
        """When a collector or writer that is no longer responsive was last heard of (its last status):
        stopped cleanly, or silent longer than ``stale_after_s`` (killed, hung, cut off). None while responsive."""
        return None if self.responsive(status) else status.updated_ns

    @property
    def departed(self) -> dict[str, int]:
        """Collector instance id -> last heard of, for every collector that left the fleet (stopped or silent)."""
        return {s.instance_id: s.updated_ns for s in self.instances if not self.responsive(s)}

    @property
    def live(self) -> tuple[InstanceStatus, ...]:
        return tuple(s for s in self.instances if self.responsive(s))

    @property
    def partitions_total(self) -> int:
        totals = [s.partitions_total for s in self.live] + ([self.membership.partitions_total] if self.membership else [])
        return max(totals, default=0)

    @property
    def orphaned(self) -> tuple[int, ...]:
        """Assignment partitions no responsive instance reports owning (their symbols are watched by nobody)."""
        owned = {p for s in self.live for p in s.partitions}
        return tuple(p for p in range(self.partitions_total) if p not in owned)

    @property
    def double_owned(self) -> tuple[int, ...]:
        """Partitions two responsive instances report (a rebalance in progress, or statuses of different ages)."""
        seen: set[int] = set()
        twice: set[int] = set()
        for status in self.live:
            twice |= seen & set(status.partitions)
            seen |= set(status.partitions)
        return tuple(sorted(twice))

    def capacity(self) -> FleetCapacity:
        wanted = self.desired if self.desired is not None else sum(s.wanted for s in self.live)
        return assess_capacity(wanted, [s.watch_limit for s in self.live])
