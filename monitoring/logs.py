"""Structured logs: one JSON object per line with the message, level, logger and extra fields.

Library code logs with ``log.info("msg", extra={"symbol": s, "count": n})``; this
formatter turns the extras into fields so the lines can be searched and aggregated.
Every process writes them to stderr (journald, ``docker logs``) and to its own rotating
file, ``<logs directory>/<process>.log``: one file per process, because several processes
appending to one file and rotating it would tear each other's lines. The dashboard's Logs
page reads every file of the directory (monitoring/log_reader.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path

import msgspec

from config import ConfigError, Settings, load_settings

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_encode = msgspec.json.Encoder().encode
LOG_SUFFIX = ".log"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return _encode(payload).decode()


class AgedRotatingFileHandler(RotatingFileHandler):
    """A log file rotated by size or age, whose rotated copies are deleted by count or age.

    The standard handlers rotate by size (``RotatingFileHandler``) or by time
    (``TimedRotatingFileHandler``), not both, and neither deletes by age: a quiet process
    would keep a months-old file, a noisy one fill the disk within the hour. Age is counted
    from when this handler opened the file, or from the file's last write when an older
    process left it (a stale file is rotated at start). ``clock`` is the wall clock
    (``time.time``), passed in so tests need not wait.
    """

    def __init__(self, path: Path, *, max_bytes: int, keep_files: int, rotate_after_s: float, max_age_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(path, maxBytes=max_bytes, backupCount=keep_files, encoding="utf-8")
        self._clock = clock
        self._rotate_after_s = rotate_after_s
        self._max_age_s = max_age_s
        self._opened_at = clock()
        if path.exists() and path.stat().st_size and self._clock() - path.stat().st_mtime >= rotate_after_s:
            self.doRollover()
        else:
            self.delete_expired()

    def shouldRollover(self, record: logging.LogRecord) -> int:  # noqa: N802 - logging's naming
        if self._clock() - self._opened_at >= self._rotate_after_s:
            if self.stream is not None and self.stream.tell():
                return 1
            self._opened_at = self._clock()  # nothing written yet: an empty file is not worth a rotation
        return super().shouldRollover(record)

    def doRollover(self) -> None:  # noqa: N802 - logging's naming
        super().doRollover()
        self._opened_at = self._clock()
        self.delete_expired()

    def rotated(self) -> list[Path]:
        """The rotated copies that exist, newest first (``<name>.1``, ``<name>.2`` ...)."""
        base = Path(self.baseFilename)
        copies = (base.with_name(f"{base.name}.{n}") for n in range(1, self.backupCount + 1))
        return [copy for copy in copies if copy.exists()]

    def delete_expired(self) -> None:
        """Delete rotated copies last written more than ``max_age_s`` ago (count is the base class's job)."""
        now = self._clock()
        for copy in self.rotated():
            try:
                if now - copy.stat().st_mtime > self._max_age_s:
                    copy.unlink()
            except OSError as exc:  # gone meanwhile, or not ours to delete: logging must not fail for it
                sys.stderr.write(f"tickops: cannot delete expired log file {copy}: {exc}\n")


def log_file_handler(settings: Settings, process: str) -> AgedRotatingFileHandler | None:
    """The rotating file of ``process`` ("collector-tickops-1", "writer-...", "dashboard-..."), or None when
    ``logs.file`` is off."""
    if not settings.logs.file:
        return None
    logs = settings.logs
    return AgedRotatingFileHandler(
        settings.log_directory() / f"{process}{LOG_SUFFIX}", max_bytes=logs.max_file_mb * 2**20,
        keep_files=logs.keep_files, rotate_after_s=logs.rotate_after_h * 3600, max_age_s=logs.max_age_days * 86_400)


def configure_logging(level: str = "INFO", stream=sys.stderr, file: logging.Handler | None = None) -> None:
    """Install the JSON formatter on the root logger, on ``stream`` and on ``file`` (a rotating file).

    Idempotent: the first configuration of a process wins, so a Streamlit rerun or a second
    caller adds no duplicate handlers (a file handler offered then is closed unused).
    """
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            if file is not None:
                file.close()
            return
    for handler in (logging.StreamHandler(stream), file):
        if handler is not None:
            handler.setFormatter(JsonFormatter())
            root.addHandler(handler)


def process_name(role: str, settings: Settings) -> str:
    """``<role>-<instance_id>``, the name of a process's log file; safe as a file name."""
    name = f"{role}-{settings.instance_id}"
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).lstrip(".") or role


def configure_process_logging(role: str, settings: Settings) -> None:
    """What each entry point calls first: JSON to stderr and to ``<logs directory>/<role>-<instance>.log``.

    A log directory that cannot be created or written is reported on stderr and the process
    runs with stderr only: losing the file must not stop the pipeline.
    """
    try:
        handler = log_file_handler(settings, process_name(role, settings))
    except OSError as exc:
        sys.stderr.write(f"tickops: log file under {settings.log_directory()} not opened ({exc}); "
                         "logging to stderr only\n")
        handler = None
    configure_logging(settings.log_level, file=handler)
    if handler is not None:
        logging.getLogger(__name__).debug("logging to file", extra={"path": handler.baseFilename,
                                                                    "pid": os.getpid()})


def start_process(role: str) -> Settings:
    """What every entry point does first: load the settings (a bad one prints what to fix and exits with
    code 2) and send the logs to stderr and to the role's file."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None
    configure_process_logging(role, settings)
    return settings
