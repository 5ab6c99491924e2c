"""The audit chains' anchor: each chain's head kept outside ClickHouse, so cutting records from a chain's end shows.

A hash chain proves nothing about records removed from its end: the shorter chain is
still intact. So every process that appends to the trail also writes its chain's head
(source, seq, hash) to an anchor file under its data_dir, one line per source, replaced
atomically (write, fsync, rename) under a file lock, since an engine, a dashboard and the
tools may share one data_dir. ``python -m alerts.audit verify --anchor PATH`` compares the
stored chains with it (storage/audit_chain.py). The anchor may lag storage by the last
record (a stop between the insert and the anchor's rewrite): behind is never a problem,
ahead is.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

import msgspec

from storage.audit_chain import Anchor, AuditRecord

log = logging.getLogger(__name__)

ANCHOR_FILE = "audit_anchor.jsonl"


class AnchorError(Exception):
    """The anchor file could not be read or written."""


def anchor_path(data_dir: Path) -> Path:
    return data_dir / ANCHOR_FILE


def parse_anchors(lines: list[bytes], where: str) -> list[Anchor]:
    """The anchors of a file's lines (pure); a malformed line is an error: a damaged anchor proves nothing."""
    anchors = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            fields = msgspec.json.decode(line)
            anchors.append(Anchor(str(fields["source"]), int(fields["seq"]), str(fields["hash"])))
        except (msgspec.DecodeError, KeyError, TypeError, ValueError) as exc:
            raise AnchorError(f"{where} line {number} is not an anchor ({exc}): restore the file from a copy, "
                              "or verify without it") from exc
    return anchors


def read_anchors(path: Path) -> list[Anchor]:
    try:
        return parse_anchors(path.read_bytes().splitlines(), str(path))
    except OSError as exc:
        raise AnchorError(f"cannot read the audit anchor {path}: {exc}") from exc


def record_head(path: Path, record: AuditRecord) -> None:
    """Make ``record`` its source's anchored head (the other sources' lines kept)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            anchors = {a.source: a for a in (read_anchors(path) if path.exists() else [])}
            anchors[record.source] = Anchor(record.source, record.seq, record.hash)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(temporary, "wb") as file:
                file.writelines(msgspec.json.encode({"source": a.source, "seq": a.seq, "hash": a.hash}) + b"\n"
                                for a in sorted(anchors.values(), key=lambda a: a.source))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
    except OSError as exc:
        raise AnchorError(f"cannot write the audit anchor {path}: {exc}") from exc
