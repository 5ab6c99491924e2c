"""The write-behind journal: entries round-trip with their values' types, a torn tail is cut off and counted,
entries marked done are not replayed, and the queue replays what a stopped process left, in order."""

from __future__ import annotations

import logging
import math
from datetime import date, datetime, timezone
from decimal import Decimal

import msgspec
import pytest

from alerts.store import AlertStore
from storage.audit_chain import verify
from storage.audit_trail import all_records
from storage.availability import StorageMonitor
from storage.migrate import migrate
from storage.write_behind import WriteBehind
from storage.write_behind_journal import Journal, JournalEntry, JournalError, decode_value, encode_value, parse


def test_column_values_come_back_as_the_same_values_and_types():
    values = [1, 2.5, 3.0, "x", None, True, math.inf, datetime(2026, 11, 30, 13, 5, tzinfo=timezone.utc),
              date(2026, 11, 30), Decimal("12.3400"), b"\x00\xff", [1, "a"]]
    back = decode_value(msgspec.json.decode(msgspec.json.encode(encode_value(values))))
    assert back == values and [type(v) for v in back] == [type(v) for v in values]
    assert math.isnan(decode_value(msgspec.json.decode(msgspec.json.encode(encode_value(math.nan)))))


def test_a_value_with_no_plain_form_is_refused_with_a_journal_error():
    with pytest.raises(JournalError, match="cannot be journaled"):
        encode_value(object())


def test_entries_round_trip_and_those_marked_done_are_not_replayed(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    assert journal.replay() == []
    journal.append(JournalEntry(1, "symbols", ("symbol", "level1"), [["AAPL"], [1]]))
    journal.append(JournalEntry(2, "audit_trail", ("source",), {"source": "s", "ts_ns": 5}, "audit_record"))
    journal.append(JournalEntry(3, "alerts", ("value",), [[1.5]]))
    journal.done(1)
    journal.close()
    again = Journal(tmp_path / "j.jsonl")
    assert again.replay() == [JournalEntry(2, "audit_trail", ("source",), {"source": "s", "ts_ns": 5}, "audit_record"),
                              JournalEntry(3, "alerts", ("value",), [[1.5]])]
    assert again.next_id() == 4
    assert len((tmp_path / "j.jsonl").read_bytes().splitlines()) == 2  # compacted at replay


def test_a_torn_last_line_is_cut_off_counted_and_logged_and_the_rest_kept(tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    journal.replay()
    journal.append(JournalEntry(1, "symbols", ("symbol",), [["AAPL"]]))
    journal.append(JournalEntry(2, "symbols", ("symbol",), [["MSFT"]]))
    journal.close()
    path.write_bytes(path.read_bytes()[:-7])  # a crash in the middle of writing the second line
    assert parse(path.read_bytes().splitlines()).torn == 1
    with caplog.at_level(logging.ERROR, logger="storage.write_behind_journal"):
        entries = Journal(path).replay()
    assert [e.data for e in entries] == [[["AAPL"]]]
    (torn,) = [r for r in caplog.records if r.getMessage().startswith("write-behind journal: torn lines cut off")]
    assert (torn.torn, torn.kept) == (1, 1)
    assert path.read_bytes().endswith(b"\n") and parse(path.read_bytes().splitlines()).torn == 0


def test_a_queue_stopped_while_storage_was_down_is_replayed_in_order_and_its_journal_removed(chdb_store, tmp_path):
    migrate(chdb_store)
    path = tmp_path / "write_behind" / "tickops-1.jsonl"
    down = WriteBehind(chdb_store, StorageMonitor(migrated=False), journal=path)
    alerts = AlertStore(chdb_store, down, audit_source="tickops-1")
    for ts in (1, 2, 3):
        alerts.audit("ops-anna", f"action-{ts}", "AAPL", ts_ns=ts)
    alerts.audit("ops-anna", "engine_start", "tickops-1", lambda previous: f"previous={previous!r}", ts_ns=4)
    alerts.save([])
    assert down.pending == 4 and path.exists()
    down.close()  # the process stops

    monitor = StorageMonitor(migrated=False)
    again = WriteBehind(chdb_store, monitor, journal=path)
    assert again.pending == 4
    AlertStore(chdb_store, again, audit_source="tickops-1")  # registers how audit records are rebuilt
    monitor.mark_migrated()
    again.flush()
    records = all_records(chdb_store)
    assert [(r.seq, r.action, r.ts_ns) for r in records] == [
        (1, "action-1", 1), (2, "action-2", 2), (3, "action-3", 3), (4, "engine_start", 4)]
    assert records[-1].details == "previous=''"  # computed with the previous record unreadable
    assert all(summary.ok for summary in verify(records))
    assert again.pending == 0 and not path.exists()


def test_an_entry_dropped_by_the_bound_is_not_replayed(chdb_store, tmp_path):
    migrate(chdb_store)
    path = tmp_path / "j.jsonl"
    monitor = StorageMonitor(migrated=False)
    writes = WriteBehind(chdb_store, monitor, journal=path, max_entries=2)
    alerts = AlertStore(chdb_store, writes, audit_source="tickops-1")
    for ts in (1, 2, 3):  # the first is dropped by the bound: marked done, never replayed
        alerts.audit("ops-anna", f"action-{ts}", "AAPL", ts_ns=ts)
    assert (writes.pending, writes.dropped) == (2, 1)
    writes.close()
    again = WriteBehind(chdb_store, StorageMonitor(migrated=False), journal=path)
    assert again.pending == 2


def test_a_journal_that_cannot_be_written_is_counted_and_logged_and_the_entry_kept_in_memory(
        chdb_store, tmp_path, caplog):
    migrate(chdb_store)
    (tmp_path / "not-a-directory").write_text("")  # as unwritable as a full or read-only disk, even for root
    monitor = StorageMonitor(migrated=False)
    writes = WriteBehind(chdb_store, monitor, journal=tmp_path / "not-a-directory" / "j.jsonl")
    with caplog.at_level(logging.ERROR, logger="storage.write_behind"):
        AlertStore(chdb_store, writes).audit("ops-anna", "acknowledge", "x/y", ts_ns=1)
    assert (writes.pending, writes.journal_failures) == (1, 2)  # reading it back at creation, then the entry
    failed = [r.table for r in caplog.records if r.getMessage().startswith("write-behind journal failed")]
    assert failed == ["replay", "audit_trail"]
    monitor.mark_migrated()
    writes.flush()
    assert [r.action for r in all_records(chdb_store)] == ["acknowledge"]


def test_a_journal_held_by_another_process_with_the_same_source_is_not_shared(chdb_store, tmp_path, caplog):
    path = tmp_path / "j.jsonl"
    first = WriteBehind(chdb_store, StorageMonitor(migrated=False), journal=path)
    with caplog.at_level(logging.ERROR, logger="storage.write_behind"):
        second = WriteBehind(chdb_store, StorageMonitor(migrated=False), journal=path)
        second.insert("symbols", ("symbol",), [["AAPL"]])
    assert (second.pending, second.journal_failures, first.journal_failures) == (1, 2, 0)
    assert any("in use by another process" in r.error for r in caplog.records if hasattr(r, "error"))
    first.close()



class _JournalAtStore(logging.Handler):
    """Reads the journal when a record is reported stored: what a stop right after the insert, before its
    done mark, leaves on disk."""

    def __init__(self, path) -> None:
        super().__init__()
        self.path = path
        self.seen: list[bytes] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "audit record stored":
            self.seen.append(self.path.read_bytes())


def test_an_audit_record_stored_but_not_marked_done_before_a_stop_is_replayed_as_an_exact_copy(chdb_store, tmp_path):
    migrate(chdb_store)
    path = tmp_path / "j.jsonl"
    monitor = StorageMonitor(migrated=False)
    writes = WriteBehind(chdb_store, monitor, journal=path)
    AlertStore(chdb_store, writes, audit_source="tickops-1").audit("ops-anna", "acknowledge", "x/y", ts_ns=1)
    at_store = _JournalAtStore(path)
    logger = logging.getLogger("storage.audit_trail")
    logger.addHandler(at_store)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        monitor.mark_migrated()
        writes.flush()
    finally:
        logger.removeHandler(at_store)
        logger.setLevel(old_level)
    writes.close()
    (left,) = at_store.seen
    content, linked = left.splitlines()  # the action's content, then the rows linked from it
    assert b'"k":"audit_record"' in content and b'"k"' not in linked and b'"n":1,' in linked
    path.write_bytes(left)  # the process stopped there

    again = WriteBehind(chdb_store, StorageMonitor(), journal=path)
    AlertStore(chdb_store, again, audit_source="tickops-1")
    again.flush()
    (chain,) = verify(all_records(chdb_store))
    assert (chain.records, chain.copies, chain.ok) == (1, 1, True)  # not linked a second time as #2
