"""The audit page's pure parts: the CSV export holds every field, the day filter is in UTC."""

from __future__ import annotations

import csv
import io
from datetime import date

from alerts.settings_audit import start_details
from dashboard.audit_view import CSV_COLUMNS, audit_csv, audit_rows, day_range_ns
from storage.audit_chain import link, verify

DAY_NS = 86_400 * 1_000_000_000
JAN_2_2026_NS = 1_767_312_000 * 1_000_000_000


def test_the_csv_export_holds_every_field_and_its_records_still_verify():
    first = link(None, "tickops-1", JAN_2_2026_NS, "anna", "acknowledge", "disk_free_low/data_dir", 'note, "quoted"\nx')
    second = link(first, "tickops-1", JAN_2_2026_NS + 1, "ben", "logout", "ben", "client=10.0.0.1")
    rows = list(csv.DictReader(io.StringIO(audit_csv([second, first]))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[1]["details"] == 'note, "quoted"\nx' and rows[1]["time_utc"] == "2026-01-02 00:00:00 UTC"
    rebuilt = [type(first)(r["source"], int(r["seq"]), int(r["ts_ns"]), r["actor"], r["action"], r["subject"],
                           r["details"], r["prev_hash"], r["hash"]) for r in rows]
    assert verify(rebuilt)[0].ok  # an export can be checked against the chain later


def test_a_start_record_is_shown_as_its_digest_and_what_changed():
    settings = {"feed": {"watch_limit": 500}}
    start = link(None, "tickops-1", 1, "ops", "engine_start", "tickops-1", start_details(settings)(None))
    (row,) = audit_rows([start])
    assert row["details"].endswith("(no previous start to compare)") and row["operator"] == "ops"


def test_days_are_whole_utc_days_and_a_single_day_is_that_day():
    assert day_range_ns([date(2026, 1, 2), date(2026, 1, 3)]) == (JAN_2_2026_NS, JAN_2_2026_NS + 2 * DAY_NS)
    assert day_range_ns([date(2026, 1, 2)]) == (JAN_2_2026_NS, JAN_2_2026_NS + DAY_NS)
    assert day_range_ns([]) == (None, None)
