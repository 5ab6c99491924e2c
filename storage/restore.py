"""Replay backup segments into storage so that each event is stored once.

    python -m storage.restore [PATH ...] [--since TIME] [--until TIME] [--force]

PATHs are segment files or directories (default: the configured backup directory);
TIME is ISO 8601 (UTC unless it carries an offset) or integer epoch nanoseconds and
selects events by ``ts_ns`` in [since, until). The target is
``storage.factory.open_store(load_settings())``; migrations are applied first. The run is
audited in the ``restore`` chain of the audit trail (``restore`` before, ``restore_done``
with the counts after), under the OS user running it; no record, no restore.

Idempotency, decided: the ReplacingMergeTree key (each table's identity, :mod:`events.kinds`:
a trade by content, other events by (source, seq)) would absorb repeated rows on merge, but
until a merge ``count()`` and the 1-minute bars would show them twice. So restore also skips
events whose identity is already stored (:func:`storage.identity.stored_identities`, per
chunk) and inserts each identity once: a trade that another collector or a backfill stored
is not restored again from this instance's backup. Restoring the same segments twice
therefore leaves ``count()`` exact without FINAL. The check-then-insert is not atomic: if
the live writer inserts the same events at the same moment, the merge key still collapses
them (integrity queries use ``uniqExact`` over the identity or FINAL).

Every segment is verified against its manifest's sha256 first; a mismatch or a missing
manifest is a clear error and the segment is skipped (exit status 1) unless ``--force``.
A storage failure stops the run (exit status 2); running it again resumes exactly.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from events import Event
from storage.identity import stored_identities
from storage.rows import Identity, identity_of, table_for, to_batches
from storage.segments import SegmentError, is_sealed, list_segments, read_manifest, verify_segment
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

Status = Literal["restored", "out_of_range", "failed"]


@dataclass
class SegmentOutcome:
    """What happened to one segment."""

    path: Path
    status: Status
    events: int = 0
    inserted: int = 0
    already_stored: int = 0
    error: str | None = None


@dataclass
class RestoreReport:
    segments: list[SegmentOutcome] = field(default_factory=list)

    @property
    def inserted(self) -> int:
        return sum(s.inserted for s in self.segments)

    @property
    def already_stored(self) -> int:
        return sum(s.already_stored for s in self.segments)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.segments)

    @property
    def failed(self) -> list[SegmentOutcome]:
        return [s for s in self.segments if s.status == "failed"]


def parse_time(text: str) -> int:
    """ISO 8601 (naive means UTC) or integer epoch ns -> epoch ns."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither ISO 8601 nor epoch nanoseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Directories become their segment files (oldest first); files are kept as given."""
    found: list[Path] = []
    for path in paths:
        found.extend(list_segments(path) if path.is_dir() else [path])
    return found


def in_range(segment: Path, since_ns: int | None, until_ns: int | None) -> bool:
    """Whether a segment may hold events in [since, until): judged by its manifest, unsealed ones always."""
    if (since_ns is None and until_ns is None) or not is_sealed(segment):
        return True
    try:
        return read_manifest(segment).overlaps(since_ns, until_ns)
    except SegmentError:
        return True  # let verification report the bad manifest


def restore_segments(
    store: Store,
    segments: Sequence[Path],
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    force: bool = False,
    progress: bool = False,
    chunk_events: int = 50_000,
    clock: Callable[[], int] = time.time_ns,
) -> RestoreReport:
    """Verify and replay ``segments`` into ``store`` (already migrated); see the module docstring."""
    report = RestoreReport()
    selected = []
    for segment in segments:
        if in_range(segment, since_ns, until_ns):
            selected.append(segment)
        else:
            report.segments.append(SegmentOutcome(segment, "out_of_range"))
    total = sum(_manifest_count(segment) for segment in selected)
    with tqdm(total=total or None, unit="ev", unit_scale=True, disable=not progress, desc="restore") as bar:
        for segment in selected:
            outcome = SegmentOutcome(segment, "restored")
            report.segments.append(outcome)
            try:
                verified = verify_segment(segment, force=force)
                chunk: list[Event] = []
                for batch in verified.batches():
                    outcome.events += len(batch)
                    bar.update(len(batch))
                    chunk.extend(e for e in batch if table_for(e) and _within(e, since_ns, until_ns))
                    if len(chunk) >= chunk_events:
                        _insert_new(store, chunk, outcome, clock())
                        chunk = []
                _insert_new(store, chunk, outcome, clock())
            except SegmentError as exc:
                outcome.status = "failed"
                outcome.error = str(exc)
                log.error("backup segment not restored", extra={"segment": str(segment), "error": str(exc)})
                continue
            log.info(
                "backup segment restored",
                extra={"segment": str(segment), "events": outcome.events, "inserted": outcome.inserted,
                       "already_stored": outcome.already_stored},
            )
    return report


def _manifest_count(segment: Path) -> int:
    try:
        return read_manifest(segment).count
    except SegmentError:
        return 0


def _within(event: Event, since_ns: int | None, until_ns: int | None) -> bool:
    ts = getattr(event, "ts_ns", 0)
    return (since_ns is None or ts >= since_ns) and (until_ns is None or ts < until_ns)


def _insert_new(store: Store, events: list[Event], outcome: SegmentOutcome, stored_ns: int) -> None:
    """Insert the events whose identity is not stored yet (and each identity once)."""
    by_table: dict[str, dict[Identity, Event]] = {}
    for event in events:
        table = table_for(event)
        assert table is not None
        by_table.setdefault(table, {}).setdefault(identity_of(table, event), event)
    fresh: list[Event] = []
    for table, keyed in by_table.items():
        stored = stored_identities(store, table, list(keyed.values()))
        fresh.extend(event for key, event in keyed.items() if key not in stored)
    outcome.already_stored += len(events) - len(fresh)
    for batch in to_batches(fresh, stored_ns).values():
        outcome.inserted += store.insert_columns(batch.table, batch.columns, batch.data)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m storage.restore",
        description=(
            "Replay backup segments into the configured storage (TICKOPS_* settings). Each segment is "
            "verified against its manifest's sha256 first; events already stored (a trade with the same symbol, "
            "ts_ns, total volume, price and size; any other event with the same source and seq) are skipped, "
            "so restoring twice changes nothing."
        ),
    )
    parser.add_argument(
        "paths", nargs="*", type=Path,
        help="segment files or directories (default: the configured backup directory)",
    )
    parser.add_argument("--since", type=parse_time, help="only events with ts_ns >= this (ISO 8601 UTC or epoch ns)")
    parser.add_argument("--until", type=parse_time, help="only events with ts_ns < this (ISO 8601 UTC or epoch ns)")
    parser.add_argument(
        "--force", action="store_true",
        help="also replay segments whose sha256 does not match or that have no manifest (complete frames only)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from config import load_settings
    from monitoring.logs import configure_logging
    from storage.audit_anchor import anchor_path
    from storage.audit_trail import record_tool_action
    from storage.backup import BackupConfig
    from storage.factory import open_store
    from storage.migrate import migrate

    settings = load_settings()
    configure_logging(settings.log_level)
    paths = args.paths or [BackupConfig.from_settings(settings).directory]
    absent = [str(path) for path in paths if not path.exists()]
    if absent:
        print(f"error: {', '.join(absent)} does not exist", file=sys.stderr)
        return 1
    segments = expand_paths(paths)
    if not segments:
        print(f"no backup segments in {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    store = open_store(settings)
    request = f"segments={len(segments)} since={args.since} until={args.until} force={args.force}"
    try:
        migrate(store)
        record_tool_action(store, "restore", "restore", ", ".join(map(str, paths)), request,
                           anchor=anchor_path(settings.data_dir))
        report = restore_segments(
            store, segments, since_ns=args.since, until_ns=args.until, force=args.force,
            progress=not args.no_progress,
        )
        record_tool_action(store, "restore", "restore_done", ", ".join(map(str, paths)),
                           f"{request} inserted={report.inserted} already_stored={report.already_stored} "
                           f"failed_segments={len(report.failed)}", anchor=anchor_path(settings.data_dir))
    except StorageError as exc:
        print(f"error: storage failed, nothing is lost; run the same restore again when it is back: {exc}",
              file=sys.stderr)
        return 2
    finally:
        store.close()
    for outcome in report.segments:
        detail = outcome.error or f"{outcome.events} events, {outcome.inserted} inserted, {outcome.already_stored} already stored"
        print(f"{outcome.status:<12} {outcome.path.name}  {detail}")
    print(
        f"restored into {store!r}: {report.inserted} inserted, {report.already_stored} already stored, "
        f"{len(report.failed)} segment(s) failed"
    )
    for outcome in report.failed:
        print(f"error: {outcome.error}", file=sys.stderr)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
