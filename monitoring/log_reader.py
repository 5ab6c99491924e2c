"""Read back the JSON log files of every process, filter them, and count errors over time (the Logs page).

    <logs directory>/collector-a.log, .log.1 ...  ──read_recent (tail of each file)──► lines
    lines ──parse_line──► LogEntry (a line that is not ours is kept as raw text, never dropped)
    LogQuery.matches: level at least, components (loggers), symbol, text
    error_counts: ERROR and CRITICAL per (minute, component)

Everything but :func:`read_recent` is pure. Only the newest ``max_bytes`` of each file are
read, so a page render stays bounded however large the files grow.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import msgspec

from monitoring.logs import LOG_SUFFIX

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RANK = {name: logging.getLevelName(name) for name in LEVELS}
_decode = msgspec.json.Decoder().decode
_CORE = {"ts", "level", "logger", "msg"}


@dataclass(frozen=True)
class LogEntry:
    ts_ns: int  # 0 when the line carries no readable time
    level: str
    component: str  # the logger's name
    message: str
    process: str  # the file it came from, without the .log suffix and rotation number
    symbol: str = ""
    fields: dict[str, object] = field(default_factory=dict)  # the extras, and ``exc`` for a traceback
    raw: str = ""


def parse_ts(text: object) -> int:
    """``2026-11-30T12:00:01.250Z`` (the formatter's) to UTC epoch ns; 0 when unreadable."""
    if not isinstance(text, str):
        return 0
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        return 0


def parse_line(line: str, process: str) -> LogEntry | None:
    """A line of a log file as an entry; None for a blank line. A line that is not one of our JSON
    objects (a third-party library printing to the file, a torn last line) becomes an entry of level
    ``INFO`` and component ``?`` holding the raw text, so text search still finds it."""
    text = line.strip()
    if not text:
        return None
    try:
        payload = _decode(text)
    except msgspec.DecodeError:
        payload = None
    if not isinstance(payload, dict):
        return LogEntry(0, "INFO", "?", text, process, raw=text)
    extras = {key: value for key, value in payload.items() if key not in _CORE}
    symbol = extras.get("symbol")
    level = str(payload.get("level", "INFO")).upper()
    return LogEntry(parse_ts(payload.get("ts")), level if level in _RANK else "INFO", str(payload.get("logger", "?")),
                    str(payload.get("msg", "")), process, symbol if isinstance(symbol, str) else "", extras, text)


@dataclass(frozen=True)
class LogQuery:
    """What the operator asked for; an empty field matches everything."""

    min_level: str = "DEBUG"
    components: frozenset[str] = frozenset()  # logger names; a name also selects its children ("bus" -> "bus.kafka")
    symbol: str = ""
    text: str = ""

    def matches(self, entry: LogEntry) -> bool:
        if _RANK[entry.level] < _RANK[self.min_level]:
            return False
        if self.components and not any(entry.component == c or entry.component.startswith(c + ".")
                                       for c in self.components):
            return False
        if self.symbol and entry.symbol.upper() != self.symbol.strip().upper():
            return False
        return not self.text or self.text.lower() in (entry.raw or entry.message).lower()


def select(entries: Iterable[LogEntry], query: LogQuery, limit: int) -> list[LogEntry]:
    """The matching entries, newest first, at most ``limit``."""
    matching = [entry for entry in entries if query.matches(entry)]
    matching.sort(key=lambda entry: entry.ts_ns, reverse=True)
    return matching[:limit]


def error_counts(entries: Iterable[LogEntry], bucket_s: int = 60) -> dict[tuple[int, str], int]:
    """ERROR and CRITICAL lines per (bucket start ns, component): how errors of each component move over time."""
    bucket_ns = bucket_s * 1_000_000_000
    counts: Counter[tuple[int, str]] = Counter()
    for entry in entries:
        if entry.ts_ns and _RANK[entry.level] >= logging.ERROR:
            counts[(entry.ts_ns - entry.ts_ns % bucket_ns, entry.component)] += 1
    return dict(counts)


def process_of(path: Path) -> str:
    """``collector-a.log.3`` -> ``collector-a``."""
    name = path.name
    return name[: name.index(LOG_SUFFIX)] if LOG_SUFFIX in name else name


def log_files(directory: Path) -> list[Path]:
    """Every process's log file and its rotated copies, newest first (missing directory: none)."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.is_file() and (p.name.endswith(LOG_SUFFIX) or f"{LOG_SUFFIX}." in p.name)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def read_recent(directory: Path, max_bytes: int = 4 * 2**20, max_files: int = 50) -> list[LogEntry]:
    """The entries in the newest ``max_bytes`` of each of the ``max_files`` newest files (a first line cut
    by the limit is skipped). A file that vanishes (rotated meanwhile) or cannot be read is skipped."""
    entries: list[LogEntry] = []
    for path in log_files(directory)[:max_files]:
        try:
            with path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                start = max(0, size - max_bytes)
                handle.seek(start)
                data = handle.read()
        except OSError:
            continue
        lines = data.decode("utf-8", errors="replace").splitlines()
        if start and lines:
            lines = lines[1:]
        process = process_of(path)
        entries.extend(entry for entry in (parse_line(line, process) for line in lines) if entry is not None)
    return entries
