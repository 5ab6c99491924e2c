"""The audit anchor: chain heads kept outside storage make records cut from a chain's end, or a chain
rewritten, visible to verification; the file keeps one line per source."""

from __future__ import annotations

import pytest

from storage.audit_anchor import AnchorError, read_anchors, record_head
from storage.audit_chain import Anchor, link, verify


def _chain(source: str, length: int):
    records, previous = [], None
    for i in range(1, length + 1):
        previous = link(previous, source, i, "anna", f"action-{i}", "AAPL", "")
        records.append(previous)
    return records


def test_a_chain_behind_its_anchor_is_reported_truncated_naming_the_deleted_seqs():
    chain = _chain("tickops-1", 6)
    (summary,) = verify(chain[:4], [Anchor("tickops-1", 6, chain[5].hash)])
    assert [(p.kind, p.seq) for p in summary.problems] == [("truncated", 6)]
    assert "stored head #4 is behind the anchor's #6 (#5..#6 deleted" in summary.problems[0].message
    assert verify(chain[:4])[0].ok  # without the anchor the shorter chain is intact in itself


def test_a_chain_ahead_of_its_anchor_is_intact_and_one_rewritten_at_the_anchored_seq_is_not():
    chain = _chain("tickops-1", 6)
    assert verify(chain, [Anchor("tickops-1", 5, chain[4].hash)])[0].ok  # the anchor may lag by a record
    rewritten = _chain("tickops-1", 6)[:3] + [link(chain[2], "tickops-1", 99, "mallory", "x", "y", "")]
    (summary,) = verify(rewritten, [Anchor("tickops-1", 4, chain[3].hash)])
    assert [(p.kind, p.seq) for p in summary.problems] == [("rewritten", 4)]


def test_an_anchored_chain_deleted_whole_gets_a_summary_with_the_problem():
    (summary,) = verify([], [Anchor("restore", 2, "ab" * 32)])
    assert (summary.source, summary.records, [p.kind for p in summary.problems]) == ("restore", 0, ["truncated"])


def test_the_anchor_file_keeps_the_newest_head_of_each_source(tmp_path):
    path = tmp_path / "data" / "audit_anchor.jsonl"
    one, restore = _chain("tickops-1", 2), _chain("restore", 1)
    record_head(path, one[0])
    record_head(path, restore[0])
    record_head(path, one[1])
    assert read_anchors(path) == [Anchor("restore", 1, restore[0].hash), Anchor("tickops-1", 2, one[1].hash)]


def test_a_damaged_anchor_file_is_an_error_naming_the_line(tmp_path):
    path = tmp_path / "audit_anchor.jsonl"
    path.write_text('{"source": "a", "seq": 1, "hash": "x"}\n{"source": "b", "se')
    with pytest.raises(AnchorError, match="line 2 is not an anchor"):
        read_anchors(path)
