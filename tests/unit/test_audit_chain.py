"""The audit trail's hash chains (pure): each kind of tampering is found and named."""

from __future__ import annotations

import dataclasses
import json

from alerts.settings_audit import ABSENT, changes, settings_digest, start_details, start_summary
from storage.audit_chain import GENESIS, AuditRecord, link, record_hash, verify


def _chain(source: str = "tickops-1", n: int = 5) -> list[AuditRecord]:
    records: list[AuditRecord] = []
    for i in range(1, n + 1):
        previous = records[-1] if records else None
        records.append(link(previous, source, i * 1_000, "anna", f"action-{i}", "AAPL", f"note {i}"))
    return records


def _problems(records: list[AuditRecord]) -> list[tuple[str, int, str]]:
    return [(p.source, p.seq, p.kind) for summary in verify(records) for p in summary.problems]


def test_records_link_to_their_predecessor_with_a_hash_over_their_content():
    first, second = _chain(n=2)
    assert (first.seq, first.prev_hash) == (1, GENESIS)
    assert (second.seq, second.prev_hash) == (2, first.hash)
    assert second.hash == record_hash("tickops-1", 2_000, "anna", "action-2", "AAPL", "note 2", first.hash)
    (summary,) = verify([second, first])
    assert summary.ok and summary.records == 2 and summary.head == second


def test_an_edited_record_is_named_and_only_it():
    records = _chain()
    records[2] = dataclasses.replace(records[2], details="nothing to see")
    assert _problems(records) == [("tickops-1", 3, "edited")]
    (summary,) = verify(records)
    assert "tickops-1 #3 (3000 anna action-3 AAPL)" in summary.problems[0].message


def test_a_deleted_record_is_named_as_missing():
    records = _chain()
    del records[2]
    assert _problems(records) == [("tickops-1", 4, "missing")]
    assert "#3 missing" in verify(records)[0].problems[0].message
    assert _problems(_chain()[1:]) == [("tickops-1", 2, "missing")]  # the first one too


def test_swapped_records_are_reported_as_reordered():
    records = _chain()
    third, fourth = records[2], records[3]
    records[2], records[3] = dataclasses.replace(fourth, seq=3), dataclasses.replace(third, seq=4)
    problems = _problems(records)
    assert problems and {kind for _, _, kind in problems} == {"reordered"}
    assert ("tickops-1", 3, "reordered") in problems
    assert "follows the record stored as #4" in verify(records)[0].problems[0].message


def test_a_record_renumbered_to_close_a_gap_breaks_the_link():
    records = _chain()
    del records[2]
    records = [dataclasses.replace(r, seq=i + 1) for i, r in enumerate(records)]
    assert _problems(records) == [("tickops-1", 3, "unlinked")]


def test_two_records_claiming_one_seq_are_a_fork_and_exact_copies_are_harmless():
    records = _chain()
    forged = link(records[1], "tickops-1", 3_500, "mallory", "stop_symbol", "AAPL", "")
    assert ("tickops-1", 3, "forked") in _problems([*records, forged])
    (summary,) = verify([*records, records[1]])  # an insert retried after a lost answer
    assert summary.ok and summary.copies == 1 and summary.records == 5


def test_each_source_is_its_own_chain():
    chains = _chain("tickops-1") + _chain("restore", n=2)
    assert [(s.source, s.records, s.ok) for s in verify(chains)] == [("restore", 2, True), ("tickops-1", 5, True)]
    moved = dataclasses.replace(chains[0], source="restore")  # a record moved to another chain no longer matches
    assert ("restore", 1, "edited") in _problems([moved, *chains[1:]])


def test_the_start_record_names_the_settings_that_changed_and_holds_no_secret():
    before = {"feed": {"watch_limit": 500, "symbols": ["AAPL"]}, "storage": {"password": ""},
              "dashboard": {"operators": {}}}
    after = {"feed": {"watch_limit": 400, "symbols": ["AAPL", "NVDA"]}, "storage": {"password": "**********"},
             "dashboard": {"operators": {"anna": {"role": "admin"}}}}
    assert changes(before, after) == {
        "dashboard.operators": [{}, ABSENT], "dashboard.operators.anna.role": [ABSENT, "admin"],
        "feed.symbols": [["AAPL"], ["AAPL", "NVDA"]], "feed.watch_limit": [500, 400],
        "storage.password": ["", "**********"]}
    first = start_details(before, session="tickops-1@1")(None)
    second = start_details(after, session="tickops-1@2")(first)
    record = json.loads(second)
    assert record["previous"] == settings_digest(before) and record["digest"] == settings_digest(after)
    assert set(record["changed"]) == {"dashboard.operators", "dashboard.operators.anna.role", "feed.symbols",
                                      "feed.watch_limit", "storage.password"}
    assert json.loads(first)["changed"] is None
    assert start_summary(second).endswith("changed: dashboard.operators, dashboard.operators.anna.role, "
                                          "feed.symbols, feed.watch_limit, storage.password")
    assert "unchanged" in start_summary(start_details(after)(second))
