"""Capture what the root logger emits, at a chosen level, for tests that judge a whole run's log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

H = TypeVar("H", bound=logging.Handler)


@contextmanager
def root_logging(handler: H, level: int) -> Iterator[H]:
    """Attach ``handler`` to the root logger set to ``level``; both are restored afterwards."""
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
