"""Records of the fleet's topics: a desired spec per symbol and a status per instance, read strictly
(an unreadable record is an error that names it, never a silent watch), and the fleet a reader sees."""

from __future__ import annotations

import json

import pytest

from runtime.assignment import AssignmentRecordError, decode_spec, decode_table, encode_spec
from runtime.fleet_status import FleetStatusError, FleetView, InstanceStatus, decode_status, encode_status
from runtime.symbols import SymbolSpec

S = 1_000_000_000


def test_a_spec_survives_its_record_and_a_stop_keeps_who_stopped_it():
    spec = SymbolSpec("BRK.B", True, True, 120.0, 1_767_225_600 * S, "anna", True)
    assert decode_spec("BRK.B", encode_spec(spec)) == spec
    stop = SymbolSpec("AAPL", False, False, 0.0, 5, "bob")
    assert decode_spec("AAPL", encode_spec(stop)) == stop
    assert json.loads(encode_spec(stop))["updated_by"] == "bob"


@pytest.mark.parametrize(("key", "payload", "why"), [
    ("aapl", encode_spec(SymbolSpec("AAPL", True, False, 0.0, 1, "x")), "not canonical"),
    ("A,B", b'{"v":1}', "comma"),
    ("AAPL", b"\xff\xfe", "not JSON"),
    ("AAPL", b"[1,2]", "not a version 1 spec"),
    ("AAPL", b'{"v":2,"level1":true}', "not a version 1 spec"),
    ("AAPL", b'{"v":1,"level1":"yes"}', "malformed spec"),
    ("AAPL", b'{"v":1,"level1":true,"silent_after_s":-1}', "malformed spec"),
    ("AAPL", b'{"v":1,"level1":true,"updated_ns":1.5}', "malformed spec"),
])
def test_an_unreadable_assignment_record_is_an_error_naming_it(key, payload, why):
    with pytest.raises(AssignmentRecordError, match=why):
        decode_spec(key, payload)


def test_a_table_keeps_readable_specs_and_reports_the_rest():
    good = encode_spec(SymbolSpec("MSFT", True, False, 0.0, 1, "x"))
    specs, errors = decode_table({"MSFT": good, "msft": good, "SPY": b"junk"})
    assert list(specs) == ["MSFT"] and set(errors) == {"msft", "SPY"}


def status(instance: str, partitions: tuple[int, ...], *, updated_s: float = 100, state: str = "running",
           watched: tuple[str, ...] = ("AAPL",), limit: int = 500) -> InstanceStatus:
    return InstanceStatus(instance, f"{instance}@1", state, "ok", (), partitions, 4, 0 in partitions, False, limit,
                          len(watched), watched, {}, None, 0, int(updated_s * S))


def test_a_status_survives_its_record_and_a_mismatched_key_is_refused():
    original = status("c-1", (0, 2), watched=("AAPL", "MSFT"))
    assert decode_status("c-1", encode_status(original)) == original
    with pytest.raises(FleetStatusError, match="names instance 'c-1'"):
        decode_status("c-2", encode_status(original))
    with pytest.raises(FleetStatusError, match="lacks or mistypes"):
        decode_status("c-1", b'{"v":1,"instance_id":"c-1"}')


def test_the_fleet_view_counts_only_responsive_instances_and_finds_unowned_partitions():
    view = FleetView(None, (status("a", (0, 1), updated_s=99), status("b", (2,), updated_s=50),
                            status("c", (3,), state="stopped")), desired=700, now_ns=100 * S, stale_after_s=20)
    assert [s.instance_id for s in view.live] == ["a"]  # b silent for 50 s (killed), c stopped
    assert view.orphaned == (2, 3)
    assert view.capacity().capacity == 500 and view.capacity().short_by == 200


def test_partitions_reported_by_two_responsive_instances_are_shown_as_double_owned():
    view = FleetView(None, (status("a", (0, 1)), status("b", (1, 2, 3))), desired=1, now_ns=100 * S,
                     stale_after_s=20)
    assert view.double_owned == (1,) and view.orphaned == ()
