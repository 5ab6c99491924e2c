"""A full disk without root: run code in a forked child whose files may not grow past RLIMIT_FSIZE.

With SIGXFSZ ignored, the kernel answers a write that crosses the limit the way a filling
disk does: a short write of what still fits, then ``EFBIG`` for the rest. The limit is a
per-process setting, so the child is forked (the test process and its capture files are
never limited) and reports its result back through a pipe; a child that hangs (a replay
loop that never ends) is killed and fails the test instead of hanging the suite.
"""

from __future__ import annotations

import multiprocessing
import resource
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest

T = TypeVar("T")


@contextmanager
def file_size_limit(max_bytes: int) -> Iterator[None]:
    """No file written by this process may grow past ``max_bytes`` until the block ends (space returns)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def run_in_child(target: Callable[[], T], *, timeout_s: float = 30.0) -> T:
    """``target()``'s result, computed in a forked child with SIGXFSZ ignored; an exception in the child
    fails the test with its traceback, a child still busy after ``timeout_s`` is killed and fails it."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        try:
            sender.send((True, target()))
        except BaseException:  # noqa: BLE001 - every failure goes back to the test, with its traceback
            sender.send((False, traceback.format_exc()))

    process = context.Process(target=child, daemon=True)
    process.start()
    try:
        if not receiver.poll(timeout_s):
            pytest.fail(f"the child did not finish within {timeout_s} s (hung, e.g. a replay looping on a torn frame)")
        ok, value = receiver.recv()
    finally:
        process.kill()
        process.join()
    if not ok:
        pytest.fail(f"the child failed:\n{value}")
    return value
