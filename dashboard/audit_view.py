"""The audit page's pure parts: table rows, the CSV export, the day filter in UTC nanoseconds."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from alerts.settings_audit import start_summary
from dashboard.format import utc
from storage.audit_chain import COLUMNS, AuditRecord

CSV_COLUMNS = ("time_utc", *COLUMNS)


def audit_rows(records: Sequence[AuditRecord]) -> list[dict[str, object]]:
    """One row per record for the table; a start's settings are summed up as their digest and what changed."""
    return [{"time": utc(r.ts_ns), "operator": r.actor, "action": r.action, "subject": r.subject,
             "details": start_summary(r.details) if r.action == "engine_start" else r.details,
             "source": r.source, "seq": r.seq} for r in records]


def audit_csv(records: Sequence[AuditRecord]) -> str:
    """Every field of every record, hashes included, so an export can be checked against the chains later."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow([utc(record.ts_ns), *(getattr(record, column) for column in COLUMNS)])
    return out.getvalue()


def day_range_ns(days: Sequence[date]) -> tuple[int | None, int | None]:
    """[first day 00:00, last day + 1 00:00) in UTC epoch ns; a single day is that day; none is no bound."""
    if not days:
        return None, None
    first, last = days[0], days[-1]
    return _midnight_ns(first), _midnight_ns(last + timedelta(days=1))


def _midnight_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * 1_000_000_000
