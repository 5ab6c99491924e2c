"""A pasted or uploaded list of symbols, judged before anything starts (bulk add, staged rollout).

Pure: text in, a verdict per entry out. The operator sees every rejected entry with its reason
before confirming, so a typo in a list of a thousand is named, never silently dropped, and a
symbol already wanted is reported as such instead of being started (and audited) a second time.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Collection
from dataclasses import dataclass

from collectors.iqfeed.protocol import SYMBOL_MAX_LEN, InvalidSymbol, validate_symbol

# Newlines, commas, semicolons, tabs and spaces all separate entries: what spreadsheets,
# terminals and chat messages put between symbols.
SEPARATORS = re.compile(r"[\s,;]+")
MAX_ENTRIES = 10_000  # a list longer than any account's watch limit is a wrong file, not a rollout
SYMBOL_COLUMN = "symbol"


@dataclass(frozen=True)
class Rejected:
    entry: str  # as the operator gave it (cut to 40 characters)
    reason: str


@dataclass(frozen=True)
class SymbolList:
    accepted: tuple[str, ...]  # normalised, in the order given, not wanted yet
    already_wanted: tuple[str, ...]  # valid, but started already: nothing to do
    rejected: tuple[Rejected, ...]

    @property
    def empty(self) -> bool:
        return not (self.accepted or self.already_wanted or self.rejected)


class UnreadableUpload(ValueError):
    """An uploaded file that is not text; the message says what to upload instead."""


def upload_text(name: str, data: bytes) -> str:
    """The symbols of an uploaded file as text for :func:`parse_symbol_list`.

    A CSV with a ``symbol`` column (any case) gives that column only, so a portfolio export with
    prices and names beside the symbols works; any other file is taken whole.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableUpload(f"{name} is not UTF-8 text (byte {exc.start}): upload a .txt or .csv of symbols") from exc
    if not name.lower().endswith(".csv"):
        return text
    rows = list(csv.reader(io.StringIO(text)))
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    if SYMBOL_COLUMN not in header:
        return text
    column = header.index(SYMBOL_COLUMN)
    return "\n".join(row[column] for row in rows[1:] if len(row) > column)


def parse_symbol_list(text: str, wanted: Collection[str] = ()) -> SymbolList:
    """Split ``text`` into entries and judge each: accepted, already wanted, or rejected with why.

    ``wanted``: the symbols started already (upper case).
    """
    entries = [entry for entry in SEPARATORS.split(text) if entry]
    accepted: list[str] = []
    already: list[str] = []
    rejected: list[Rejected] = []
    first_seen: dict[str, int] = {}
    for position, entry in enumerate(entries[:MAX_ENTRIES], start=1):
        reason = _invalid(entry)
        if reason:
            rejected.append(Rejected(entry[:40], reason))
            continue
        symbol = validate_symbol(entry)
        if symbol in first_seen:
            rejected.append(Rejected(entry[:40], f"duplicate of entry {first_seen[symbol]}"))
            continue
        first_seen[symbol] = position
        (already if symbol in wanted else accepted).append(symbol)
    if len(entries) > MAX_ENTRIES:
        rejected.append(Rejected(f"{len(entries) - MAX_ENTRIES} more entries",
                                 f"a list holds at most {MAX_ENTRIES:,} entries: split it"))
    return SymbolList(tuple(accepted), tuple(already), tuple(rejected))


def _invalid(entry: str) -> str:
    """Why ``entry`` cannot be a symbol ("" when it can): the feed's own validation, length named first."""
    if len(entry) > SYMBOL_MAX_LEN:
        return f"too long: {len(entry)} characters, the limit is {SYMBOL_MAX_LEN}"
    try:
        validate_symbol(entry)
    except InvalidSymbol as exc:
        return f"invalid symbol: {exc}"
    return ""
