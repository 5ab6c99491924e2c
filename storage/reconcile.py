"""Reconcile per-symbol per-minute event counts across Kafka, ClickHouse and the backup.

    python -m storage.reconcile [--kafka | --topic T ...] [--since T] [--until T] [--json report.json]

The proof behind "nothing lost, nothing doubled": for every (table, symbol, minute of
``ts_ns``) each side is counted twice, as rows and as distinct identities (the table's
identity, :mod:`events.kinds`: a trade by content (symbol, ts_ns, total_volume, price,
size), so the same print from two collectors or a backfill is one; quotes, depth and
status by (source, seq)). A *mismatch* is a cell whose distinct counts differ between
sides (an event is missing somewhere); it lists a sample of the missing identities per side.
A *duplicate* is a cell where one side holds more rows than keys (absorbed by the
ReplacingMergeTree key or by FINAL, so reported, and failing only with ``--strict``).
Exit status: 0 all agree, 1 a mismatch or an unreadable input, 2 bad usage or a
service that cannot be reached.

Sides:
- Kafka (``--kafka``: the configured event topics, or ``--topic``): read from the
  beginning (or ``--start-offset``) up to the high watermark seen at start, with a
  throwaway consumer group that never commits; each message is decoded by ``--decoder``
  (default ``bus.codec:decode_many``: payload bytes -> an event or a list of events).
  ``--kafka-offsets-only`` reads watermarks only (message counts per partition,
  informational: status topics also carry heartbeats, which are not stored).
- ClickHouse: ``count()`` and ``uniqExact`` over the identity per cell, from the configured
  store (``open_store(load_settings())``).
- Backup: the sealed segments of the configured backup directory (or ``--backup``),
  each verified against its manifest; a segment still being written is skipped with a
  note, so choose ``--until`` before the open segment's start for an exact comparison.

Memory: Kafka and backup keys are held per cell for the detail, so bound a big
comparison with ``--since``/``--until``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
from confluent_kafka import KafkaException

from bus.security import librdkafka_security
from events import Event
from storage.kafka_read import KafkaReadError, PartitionRange, partition_ranges, read_ranges, throwaway_consumer
from storage.restore import expand_paths, parse_time
from storage.rows import IDENTITY_COLUMNS, TABLE_COLUMNS, Identity, identity_of, stored_identity, symbol_column, table_for
from storage.segments import ManifestMissing, SegmentError, iso_utc, verify_segment
from storage.store import StorageError, Store, sql_string

log = logging.getLogger(__name__)

MINUTE_NS = 60_000_000_000
Cell = tuple[str, str, int]  # (table, symbol, minute since the epoch)
CellKey = Identity  # the table's identity of an event within a cell
Decode = Callable[[bytes], "Event | Sequence[Event]"]


# librdkafka logs every reconnect attempt; failures reach the operator as ReconcileError instead.
_LIBRDKAFKA = logging.getLogger(f"{__name__}.librdkafka")
_LIBRDKAFKA.addHandler(logging.NullHandler())
_LIBRDKAFKA.propagate = False


class ReconcileError(RuntimeError):
    """An input cannot be read at all (broker unreachable, topic missing)."""


class Counts:
    """Rows and distinct keys per cell for one side of the comparison."""

    def __init__(
        self, name: str, key_source: Callable[[Sequence[Cell]], dict[Cell, set[CellKey]]] | None = None
    ) -> None:
        self.name = name
        self.rows: dict[Cell, int] = {}
        self.unique: dict[Cell, int] = {}
        self.key_sets: dict[Cell, set[CellKey]] = {}  # held in memory (Kafka, backup)
        self._key_source = key_source

    def keys(self, cells: Sequence[Cell]) -> dict[Cell, set[CellKey]]:
        """The distinct keys of ``cells`` (held in memory, or fetched in one go for a store side)."""
        if self._key_source is not None:
            return self._key_source(cells)
        return {cell: self.key_sets.get(cell, set()) for cell in cells}

    def total(self) -> dict[str, int]:
        return {"rows": sum(self.rows.values()), "unique": sum(self.unique.values())}


class EventTally:
    """Builds :class:`Counts` from a stream of events (Kafka messages, backup records)."""

    def __init__(self, name: str, since_ns: int | None = None, until_ns: int | None = None) -> None:
        self.counts = Counts(name)
        self._since = since_ns
        self._until = until_ns

    def add(self, events: Iterable[Event]) -> None:
        rows, keys = self.counts.rows, self.counts.key_sets
        for event in events:
            table = table_for(event)
            if table is None:
                continue
            ts = getattr(event, "ts_ns", 0)
            if (self._since is not None and ts < self._since) or (self._until is not None and ts >= self._until):
                continue
            cell = (table, getattr(event, "symbol", ""), ts // MINUTE_NS)
            rows[cell] = rows.get(cell, 0) + 1
            keys.setdefault(cell, set()).add(identity_of(table, event))

    def finish(self) -> Counts:
        self.counts.unique = {cell: len(keys) for cell, keys in self.counts.key_sets.items()}
        return self.counts


@dataclass
class KafkaRead:
    counts: Counts | None
    partitions: list[PartitionRange]
    messages: int = 0
    problems: list[str] = field(default_factory=list)


def read_kafka(
    bootstrap: str,
    topics: Sequence[str],
    decode: Decode | None,
    *,
    start_offsets: dict[tuple[str, int], int] | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    idle_timeout_s: float = 30.0,
    security: Mapping[str, str] | None = None,
) -> KafkaRead:
    """Consume ``topics`` up to their high watermarks at start; ``decode`` None reads watermarks only.

    ``security``: librdkafka's TLS/SASL settings (bus/security.py)."""
    consumer = throwaway_consumer(bootstrap, _LIBRDKAFKA, "reconcile", security)
    try:
        partitions = partition_ranges(consumer, topics, start_offsets or {})
        read = KafkaRead(None, partitions)
        if decode is None:
            return read
        tally = EventTally("kafka", since_ns, until_ns)
        for messages in read_ranges(consumer, partitions, idle_timeout_s):
            for message in messages:
                read.messages += 1
                try:
                    decoded = decode(message.value())
                except Exception as exc:  # noqa: BLE001 - any decoder failure is reported, not fatal
                    where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
                    read.problems.append(f"undecodable message {where}: {exc}")
                    decoded = []
                tally.add([decoded] if isinstance(decoded, msgspec.Struct) else decoded)
        read.counts = tally.finish()
        return read
    except KafkaReadError as exc:
        raise ReconcileError(str(exc)) from exc
    except KafkaException as exc:
        raise ReconcileError(f"Kafka at {bootstrap} failed: {exc}") from exc
    finally:
        consumer.close()


def read_store(store: Store, *, since_ns: int | None = None, until_ns: int | None = None) -> Counts:
    """``count()`` and ``uniqExact`` over the identity per cell, per event table."""
    conditions = []
    if since_ns is not None:
        conditions.append(f"ts_ns >= {since_ns}")
    if until_ns is not None:
        conditions.append(f"ts_ns < {until_ns}")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""

    def keys(cells: Sequence[Cell]) -> dict[Cell, set[CellKey]]:
        """One query per table for all the cells asked about."""
        found: dict[Cell, set[CellKey]] = {cell: set() for cell in cells}
        by_table: dict[str, list[Cell]] = {}
        for cell in cells:
            by_table.setdefault(cell[0], []).append(cell)
        for table, wanted in by_table.items():
            symbol = symbol_column(table)
            pairs = ", ".join(f"({sql_string(sym)}, {minute})" for _, sym, minute in wanted)
            rows = store.query(
                f"SELECT {symbol} AS sym, intDiv(ts_ns, {MINUTE_NS}) AS minute, {', '.join(IDENTITY_COLUMNS[table])} "
                f"FROM {store.table(table)} WHERE ({symbol}, intDiv(ts_ns, {MINUTE_NS})) IN ({pairs})"
            )
            for sym, minute, *identity in rows:
                found[(table, str(sym), int(minute))].add(stored_identity(table, identity))
        return found

    counts = Counts("clickhouse", key_source=keys)
    for table in TABLE_COLUMNS:
        symbol = symbol_column(table)
        rows = store.query(
            f"SELECT {symbol} AS sym, intDiv(ts_ns, {MINUTE_NS}) AS minute, count(), "
            f"uniqExact({', '.join(IDENTITY_COLUMNS[table])}) "
            f"FROM {store.table(table)} {where} GROUP BY sym, minute"
        )
        for sym, minute, row_count, unique in rows:
            cell = (table, str(sym), int(minute))
            counts.rows[cell] = int(row_count)
            counts.unique[cell] = int(unique)
    return counts


@dataclass
class BackupRead:
    counts: Counts
    segments: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def read_backup(paths: Sequence[Path], *, since_ns: int | None = None, until_ns: int | None = None) -> BackupRead:
    """Verified sealed segments under ``paths``; unsealed ones are noted, corrupt ones are problems."""
    tally = EventTally("backup", since_ns, until_ns)
    read = BackupRead(tally.counts)
    segments = expand_paths(paths)
    if not segments:
        read.problems.append(f"no backup segments in {', '.join(map(str, paths))} (--no-backup to leave it out)")
    for segment in segments:
        try:
            verified = verify_segment(segment)
            if verified.manifest is not None and not verified.manifest.overlaps(since_ns, until_ns):
                continue
            for batch in verified.batches():
                tally.add(batch)
        except ManifestMissing:
            read.notes.append(f"{segment.name} is not sealed (being written or awaiting repair); not counted")
            continue
        except SegmentError as exc:
            read.problems.append(str(exc))
            continue
        read.segments += 1
    read.counts = tally.finish()
    return read


@dataclass
class CellFinding:
    """One cell where the sides disagree (mismatch) or a side holds repeated rows (duplicate)."""

    table: str
    symbol: str
    minute: str
    counts: dict[str, dict[str, int]]
    missing: dict[str, int] = field(default_factory=dict)
    missing_sample: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ReconcileReport:
    sides: list[str]
    since_ns: int | None
    until_ns: int | None
    cells: int
    totals: dict[str, dict[str, int]]
    mismatches: list[CellFinding] = field(default_factory=list)
    duplicates: list[CellFinding] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    kafka_partitions: list[dict[str, int | str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.problems

    def to_json(self) -> str:
        return json.dumps({"ok": self.ok, **asdict(self)}, indent=2)


def compare(sides: Sequence[Counts], *, detail_cells: int = 50, sample: int = 10) -> ReconcileReport:
    """Every cell of every side, compared on distinct keys; details for the first ``detail_cells`` mismatches."""
    cells = sorted(set().union(*(side.unique for side in sides)))
    report = ReconcileReport(
        sides=[side.name for side in sides],
        since_ns=None,
        until_ns=None,
        cells=len(cells),
        totals={side.name: side.total() for side in sides},
    )
    to_explain: dict[Cell, CellFinding] = {}
    for cell in cells:
        counts = {
            side.name: {"rows": side.rows.get(cell, 0), "unique": side.unique.get(cell, 0)} for side in sides
        }
        table, symbol, minute = cell
        finding = CellFinding(table, symbol, iso_utc(minute * MINUTE_NS)[:16] + "Z", counts)
        if len({c["unique"] for c in counts.values()}) > 1:
            if len(to_explain) < detail_cells:
                to_explain[cell] = finding
            report.mismatches.append(finding)
        if any(c["rows"] > c["unique"] for c in counts.values()):
            report.duplicates.append(finding)
    if to_explain:
        _explain(to_explain, sides, sample)
    return report


def _explain(findings: dict[Cell, CellFinding], sides: Sequence[Counts], sample: int) -> None:
    """Which keys each side lacks, against the union of all sides."""
    cells = list(findings)
    keys = {side.name: side.keys(cells) for side in sides}
    for cell, finding in findings.items():
        union: set[CellKey] = set().union(*(held[cell] for held in keys.values()))
        for name, held in keys.items():
            absent = union - held[cell]
            if absent:
                finding.missing[name] = len(absent)
                finding.missing_sample[name] = [identity_text(key) for key in sorted(absent)[:sample]]


def identity_text(identity: CellKey) -> str:
    """An identity as the report shows it: its values in the table's identity order, joined by ':'."""
    return ":".join(map(str, identity))


def render(report: ReconcileReport) -> str:
    """The human table: one line per finding (missing keys indented below it), then totals and the verdict."""
    lines: list[str] = []
    header = ["finding", "table", "symbol", "minute (UTC)", *report.sides]
    rows: list[tuple[list[str], list[str]]] = []  # (columns, detail lines)
    for label, findings in (("MISMATCH", report.mismatches), ("duplicate", report.duplicates)):
        for f in findings:
            columns = [label, f.table, f.symbol or "-", f.minute]
            for side in report.sides:
                c = f.counts[side]
                columns.append(f"{c['unique']}" + (f" (+{c['rows'] - c['unique']} dup)" if c["rows"] > c["unique"] else ""))
            details = []
            for side, keys in f.missing_sample.items():
                more = f" (+{f.missing[side] - len(keys)} more)" if f.missing[side] > len(keys) else ""
                details.append(f"    missing in {side}: {' '.join(keys)}{more}")
            rows.append((columns, details))
    if rows:
        widths = [max(len(r[i]) for r in [header, *(columns for columns, _ in rows)]) for i in range(len(header))]
        lines.append("  ".join(value.ljust(width) for value, width in zip(header, widths)).rstrip())
        for columns, details in rows:
            lines.append("  ".join(value.ljust(width) for value, width in zip(columns, widths)).rstrip())
            lines.extend(details)
        lines.append("")
    for partition in report.kafka_partitions:
        lines.append(
            f"kafka {partition['topic']}[{partition['partition']}]: offsets {partition['low']}..{partition['high']}, "
            f"read from {partition['start']}: {partition['messages']} messages"
        )
    for side, total in report.totals.items():
        lines.append(f"{side}: {total['unique']} events ({total['rows']} rows) in {report.cells} cells compared")
    lines.extend(f"note: {note}" for note in report.notes)
    lines.extend(f"PROBLEM: {problem}" for problem in report.problems)
    verdict = "OK: every cell agrees" if report.ok else f"MISMATCH: {len(report.mismatches)} cell(s) differ"
    if report.problems:
        verdict += f"; {len(report.problems)} input problem(s)"
    if report.duplicates:
        verdict += f"; {len(report.duplicates)} cell(s) with duplicate rows"
    lines.append(verdict)
    return "\n".join(lines)


def load_decoder(spec: str) -> Decode:
    """``module:function`` -> the function (the bus codec by default)."""
    module_name, _, name = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as exc:
        raise ReconcileError(
            f"decoder {spec!r} not found ({exc}); pass --decoder module:function taking message bytes "
            f"and returning an event or a list of events"
        ) from exc


def _start_offset(text: str) -> tuple[str, int, int]:
    topic, _, rest = text.rpartition(":")
    topic, _, partition = topic.rpartition(":")
    try:
        return topic, int(partition), int(rest)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected TOPIC:PARTITION:OFFSET") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m storage.reconcile",
        description=(
            "Compare per-symbol per-minute event counts across Kafka, ClickHouse and the backup "
            "segments; exit 1 when any cell differs."
        ),
    )
    parser.add_argument("--kafka", action="store_true", help="read the configured event topics (<prefix>.trades ...)")
    parser.add_argument("--topic", action="append", default=[], help="Kafka topic to read instead (repeat)")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings kafka.bootstrap_servers)")
    parser.add_argument(
        "--start-offset", action="append", default=[], type=_start_offset, metavar="TOPIC:PARTITION:OFFSET",
        help="start there instead of the beginning (repeat)",
    )
    parser.add_argument("--kafka-offsets-only", action="store_true", help="read Kafka watermarks only, not messages")
    parser.add_argument("--decoder", default="bus.codec:decode_many", help="module:function decoding a message payload")
    parser.add_argument("--backup", action="append", type=Path, help="segment files or directories (repeat)")
    parser.add_argument("--no-backup", action="store_true", help="leave the backup out")
    parser.add_argument("--no-clickhouse", action="store_true", help="leave ClickHouse out")
    parser.add_argument("--since", type=parse_time, help="ts_ns >= this (ISO 8601 UTC or epoch ns)")
    parser.add_argument("--until", type=parse_time, help="ts_ns < this (ISO 8601 UTC or epoch ns)")
    parser.add_argument("--json", dest="json_path", help="also write the JSON report there ('-': stdout, no table)")
    parser.add_argument("--strict", action="store_true", help="duplicate rows also make the exit status 1")
    parser.add_argument("--detail", type=int, default=10, help="missing keys listed per mismatched cell")
    return parser


def main(argv: Sequence[str] | None = None, *, decode: Decode | None = None) -> int:
    """CLI entry; ``decode`` replaces ``--decoder`` for callers that hold a decoder already."""
    args = _parser().parse_args(argv)
    from config import load_settings
    from monitoring.logs import configure_logging
    from storage.backup import BackupConfig
    from storage.factory import open_store

    settings = load_settings()
    configure_logging(settings.log_level)
    sides: list[Counts] = []
    problems: list[str] = []
    notes: list[str] = []
    partitions: list[PartitionRange] = []
    try:
        topics = args.topic
        if args.kafka and not topics:
            from bus.topics import TopicSet

            topics = list(TopicSet(settings.kafka.topic_prefix).event_topics)
        if topics:
            if decode is None and not args.kafka_offsets_only:
                decode = load_decoder(args.decoder)
            kafka = read_kafka(
                args.bootstrap or settings.kafka.bootstrap_servers,
                topics,
                None if args.kafka_offsets_only else decode,
                start_offsets={(t, p): o for t, p, o in args.start_offset},
                since_ns=args.since,
                until_ns=args.until,
                security=librdkafka_security(settings.kafka),
            )
            partitions = kafka.partitions
            problems.extend(kafka.problems)
            if kafka.counts is not None:
                sides.append(kafka.counts)
            else:
                notes.append("Kafka read as offsets only: message counts per partition, not compared per minute")
        if not args.no_clickhouse:
            store = open_store(settings)
            try:
                sides.append(read_store(store, since_ns=args.since, until_ns=args.until))
            finally:
                store.close()
        if not args.no_backup:
            backup = read_backup(
                args.backup or [BackupConfig.from_settings(settings).directory], since_ns=args.since, until_ns=args.until
            )
            sides.append(backup.counts)
            problems.extend(backup.problems)
            notes.extend(backup.notes)
    except (ReconcileError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(sides) < 2 and not partitions:
        print("error: nothing to compare: give at least two of Kafka (--kafka/--topic), ClickHouse, backup", file=sys.stderr)
        return 2
    report = compare(sides, sample=args.detail) if sides else ReconcileReport([], None, None, 0, {})
    report.since_ns, report.until_ns = args.since, args.until
    report.problems.extend(problems)
    report.notes.extend(notes)
    report.kafka_partitions = [{**asdict(p), "messages": p.messages} for p in partitions]
    if args.json_path == "-":
        print(report.to_json())
    else:
        print(render(report))
        if args.json_path:
            Path(args.json_path).write_text(report.to_json() + "\n")
    failed = not report.ok or (args.strict and bool(report.duplicates))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
