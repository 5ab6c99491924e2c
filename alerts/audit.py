"""Check the audit trail's hash chains: ``python -m alerts.audit verify``.

Reads every record of every source from the configured storage (TICKOPS_* settings, as
the engine) and checks each chain (storage/audit_chain.py): a record edited, deleted,
moved or inserted is named with its source, seq, time, actor and action. Prints one line
per chain with its head (seq and hash) and one per problem.

A chain cut at its end is still intact in itself, so each appending process also keeps its
chain's head in an anchor file under its data_dir (storage/audit_anchor.py). ``--anchor
PATH`` (repeatable; by default the configured data_dir's anchor file, when there is one)
compares the chains with those heads: a chain whose stored head is behind its anchor
(records deleted from its end), or whose record at the anchored seq is another one, is a
problem. Keep a copy of the anchor file elsewhere (another host): the one beside the
engine can be edited together with storage.

Exit status: 0 every chain intact, 1 a problem found, 2 storage or an anchor could not be
read. Read-only: it applies no migration and writes nothing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from pathlib import Path

from storage.audit_anchor import AnchorError, anchor_path, read_anchors
from storage.audit_chain import Anchor, ChainSummary, verify
from storage.audit_trail import all_records, legacy_count
from storage.store import StorageError, Store


def verify_store(store: Store, anchors: Sequence[Anchor] = ()) -> list[ChainSummary]:
    return verify(all_records(store), anchors)


def report(summaries: Sequence[ChainSummary], out: TextIO) -> bool:
    """Print the verdict per chain; True when every chain is intact."""
    if not summaries:
        print("no audit records", file=out)
    for summary in summaries:
        head = summary.head
        state = "ok" if summary.ok else f"{len(summary.problems)} problem(s)"
        copies = f", {summary.copies} exact copies ignored" if summary.copies else ""
        print(f"{summary.source}: {summary.records} records, head #{head.seq if head else 0} "
              f"{head.hash if head else '-'}{copies}: {state}", file=out)
        for problem in summary.problems:
            print(f"  {problem.kind}: {problem.message}", file=out)
    return all(summary.ok for summary in summaries)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m alerts.audit",
                                     description="Tamper-evident audit trail of TickOps operator actions.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify_command = commands.add_parser(
        "verify", help="check every source's hash chain; exit 1 when a record was tampered with")
    verify_command.add_argument(
        "--anchor", action="append", type=Path, default=[], metavar="PATH",
        help="an anchor file of chain heads (repeatable; default: <data_dir>/audit_anchor.jsonl when it exists)")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO = sys.stdout) -> int:
    args = _parser().parse_args(argv)
    from config import ConfigError, load_settings
    from storage.factory import open_store

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths: list[Path] = args.anchor or [p for p in [anchor_path(settings.data_dir)] if p.exists()]
    try:
        anchors = [anchor for path in paths for anchor in read_anchors(path)]
    except AnchorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = open_store(settings)
    try:
        summaries = verify_store(store, anchors)
        legacy = legacy_count(store)
    except StorageError as exc:
        print(f"error: could not read the audit trail from {store!r}: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    intact = report(summaries, out)
    if paths:
        print(f"anchors: {len(anchors)} chain head(s) checked from {', '.join(map(str, paths))}", file=out)
    else:
        print("note: no anchor file: records cut from a chain's end cannot be detected (see --anchor)", file=out)
    if legacy:
        print(f"note: {legacy} older entries in audit_log predate the chained trail and cannot be verified", file=out)
    print("audit trail intact" if intact else "audit trail TAMPERED: see the problems above", file=out)
    return 0 if intact else 1


if __name__ == "__main__":
    sys.exit(main())
