"""Rebuild a lost or dropped database from the operator snapshots, what Kafka still holds and the backup segments.

    python -m storage.rebuild [--backup DIR ...] [--no-kafka] [--force] [--json report.json]

With the writers stopped (a live writer would race the restore: with ``bus.kind = kafka``
the command refuses while the writers' consumer group has members), in this order:

1. migrate: the schema, empty (``CREATE ... IF NOT EXISTS``, so a half-rebuilt database is fine);
2. operator tables from the newest snapshot that verifies, in ``<DIR>/operator/`` of any
   ``--backup`` directory (default: the configured backup directory; give the mirror when the
   backup disk is gone);
3. Kafka (``bus.kind = kafka``, unless ``--no-kafka``): every event topic from its low to its
   high watermark at the start, stored with its bus positions (storage/kafka_replay.py), so the
   writers resume after it;
4. backup segments of the ``--backup`` directories (a segment found in several is read once):
   the older events Kafka's retention removed, and anything Kafka never had; events already
   stored are skipped (storage/restore.py).

Each step skips what is already stored, so an interrupted rebuild is simply run again. The
report gives each step's duration: the recovery time of this database's size on this
hardware. Exit status: 0 done; 1 done, but a segment or snapshot failed verification (see
the report; ``--force`` replays segments that fail it); 2 refused, or storage or Kafka failed
(nothing is lost: run it again).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bus.security import librdkafka_security
from bus.topics import TopicSet
from config import Settings, load_settings
from monitoring.logs import configure_logging
from storage.audit_anchor import anchor_path
from storage.audit_trail import record_tool_action
from storage.backup import BackupConfig
from storage.factory import open_store
from storage.kafka_read import KafkaReadError
from storage.kafka_replay import KafkaReplayReport, replay_kafka
from storage.migrate import migrate
from storage.operator_backup import SnapshotRestore, restore_latest, snapshot_directory
from storage.restore import RestoreReport, expand_paths, restore_segments
from storage.store import StorageError, Store

log = logging.getLogger(__name__)


class RebuildRefused(RuntimeError):
    """Something would race the rebuild; the message says what to stop first."""


@dataclass(frozen=True)
class KafkaSource:
    bootstrap: str
    topics: TopicSet
    writer_group: str
    security: Mapping[str, str] = field(default_factory=dict)  # librdkafka's TLS/SASL settings (bus/security.py)


@dataclass
class Step:
    name: str
    seconds: float
    detail: str


@dataclass
class RebuildReport:
    steps: list[Step] = field(default_factory=list)
    snapshot: SnapshotRestore | None = None
    kafka: KafkaReplayReport | None = None
    backup: RestoreReport | None = None

    @property
    def events_inserted(self) -> int:
        return (self.kafka.inserted if self.kafka else 0) + (self.backup.inserted if self.backup else 0)

    @property
    def seconds(self) -> float:
        return sum(step.seconds for step in self.steps)

    @property
    def problems(self) -> list[str]:
        found = list(self.snapshot.skipped) if self.snapshot else []
        if self.backup:
            found += [f"{o.path}: {o.error}" for o in self.backup.failed]
        return found

    def summary(self) -> str:
        lines = [f"{step.name:<16} {step.seconds:8.2f} s  {step.detail}" for step in self.steps]
        lines.append(f"rebuilt {self.events_inserted} events in {self.seconds:.2f} s")
        lines += [f"PROBLEM: {problem}" for problem in self.problems]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps({"events_inserted": self.events_inserted, "seconds": self.seconds,
                           "steps": [asdict(step) for step in self.steps], "problems": self.problems}, indent=2)


def active_writers(bootstrap: str, group: str, security: Mapping[str, str] | None = None) -> list[str]:
    """The members of the writers' consumer group now (client id @ host); [] when it has none."""
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger(f"{__name__}.admin")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({**(security or {}), "bootstrap.servers": bootstrap, "logger": quiet})
    try:
        description = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    except Exception as exc:  # noqa: BLE001 - any failure to describe means we cannot tell: refuse
        raise KafkaReadError(f"cannot describe consumer group {group!r} at {bootstrap}: {exc}") from exc
    return [f"{member.client_id}@{member.host}" for member in description.members]


def rebuild(store: Store, backup_dirs: Sequence[Path], *, kafka: KafkaSource | None = None, force: bool = False,
            clock: Callable[[], float] = time.monotonic) -> RebuildReport:
    """Run the steps of the module docstring; raises RebuildRefused, StorageError or KafkaReadError."""
    if kafka is not None:
        members = active_writers(kafka.bootstrap, kafka.writer_group, kafka.security)
        if members:
            raise RebuildRefused(
                f"consumer group {kafka.writer_group!r} has {len(members)} active member(s) ({', '.join(members)}): "
                "stop the writers (python -m storage.writer, or engines with bus.kind=kafka) before rebuilding; "
                "a live writer would race the restore and store events twice")
    report = RebuildReport()

    def step(name: str, action: Callable[[], str]) -> None:
        started = clock()
        detail = action()
        report.steps.append(Step(name, clock() - started, detail))
        log.info("rebuild step done", extra={"step": name, "seconds": round(report.steps[-1].seconds, 3),
                                             "detail": detail})

    def schema() -> str:
        return f"migrations applied: {migrate(store) or 'none (already there)'}"

    def operator_tables() -> str:
        report.snapshot = restore_latest(store, [snapshot_directory(d) for d in backup_dirs])
        if report.snapshot.snapshot is None:
            return "no operator snapshot found"
        inserted = ", ".join(f"{t} {n}" for t, n in report.snapshot.inserted.items())
        return f"{report.snapshot.snapshot.name}: inserted {inserted}"

    def from_kafka() -> str:
        assert kafka is not None
        report.kafka = replay_kafka(store, kafka.bootstrap, kafka.topics, security=kafka.security)
        k = report.kafka
        return (f"{k.messages} messages read, {k.inserted} inserted, {k.already_stored} already stored, "
                f"{k.skipped} not stored kinds, {len(k.set_aside)} set aside")

    def from_backup() -> str:
        found: dict[str, Path] = {}
        for path in expand_paths(backup_dirs):
            found.setdefault(path.name, path)  # the same sealed segment in the backup and its mirror: once
        segments = sorted(found.values(), key=lambda p: p.name)
        report.backup = restore_segments(store, segments, force=force)
        b = report.backup
        return (f"{len(segments)} segments, {b.events} events read, {b.inserted} inserted, "
                f"{b.already_stored} already stored, {len(b.failed)} failed")

    step("schema", schema)
    step("operator tables", operator_tables)
    if kafka is not None:
        step("kafka", from_kafka)
    step("backup segments", from_backup)
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m storage.rebuild",
        description=("Rebuild the configured database (TICKOPS_* settings) from the operator snapshots, Kafka and "
                     "the backup segments; stop the writers first. docs/DR.md has the procedure."),
    )
    parser.add_argument("--backup", action="append", type=Path,
                        help="backup or mirror directory (repeat; default: the configured backup directory)")
    parser.add_argument("--no-kafka", action="store_true", help="leave Kafka out even with bus.kind=kafka")
    parser.add_argument("--force", action="store_true",
                        help="also replay segments that fail verification or are unsealed (complete frames only)")
    parser.add_argument("--json", dest="json_path", help="also write the report there")
    return parser


def _kafka_source(settings: Settings) -> KafkaSource | None:
    if settings.bus.kind != "kafka":
        return None
    kafka = settings.kafka
    return KafkaSource(kafka.bootstrap_servers, TopicSet(kafka.topic_prefix), kafka.consumer_group,
                       librdkafka_security(kafka))


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    configure_logging(settings.log_level)
    backup_dirs = args.backup or [BackupConfig.from_settings(settings).directory]
    if not all(path.is_dir() for path in backup_dirs):
        print(f"error: not a directory: {', '.join(str(p) for p in backup_dirs if not p.is_dir())}", file=sys.stderr)
        return 2
    kafka = None if args.no_kafka else _kafka_source(settings)
    store = open_store(settings)
    try:
        report = rebuild(store, backup_dirs, kafka=kafka, force=args.force)
        # After the operator tables are back (a record before them would fork the chain they bring back).
        record_tool_action(store, "rebuild", "rebuild", ", ".join(map(str, backup_dirs)),
                           f"kafka={kafka is not None} force={args.force} events_inserted={report.events_inserted} "
                           f"problems={len(report.problems)}", anchor=anchor_path(settings.data_dir))
    except RebuildRefused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except (StorageError, KafkaReadError) as exc:
        print(f"error: {exc}; nothing stored is lost, run the same rebuild again", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(report.summary())
    if args.json_path:
        Path(args.json_path).write_text(report.to_json() + "\n")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
