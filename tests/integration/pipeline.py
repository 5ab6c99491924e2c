"""Helpers for pipeline tests: deterministic event streams, the exactly-once reconciliation, waiting.

The reconciliation is the proof every delivery test ends with: the identities stored in
each event table (a trade by content, other events by (source, seq): :mod:`events.kinds`)
equal the identities generated, and ``count()`` without FINAL equals their number, so a
lost event and a doubled row both fail the test (the same print from two collectors or a
backfill is one trade, stored once).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from events import Depth, Event, Heartbeat, Quote, System, Trade
from events.kinds import TABLES
from storage.rows import IDENTITY_COLUMNS, Identity, identity_of, stored_identity, table_for
from storage.store import StorageError, Store

EVENT_TABLES = tuple(TABLES)
SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "TSLA", "NVDA", "AMZN")
BASE_TS_NS = 1_780_000_000_000_000_000


def make_events(count: int, source: str = "sim-1", first_seq: int = 1) -> list[Event]:
    """A mixed stream like a feed's: mostly trades and quotes, some depth, status and heartbeats."""
    events: list[Event] = []
    for index in range(count):
        seq = first_seq + index
        symbol = SYMBOLS[seq % len(SYMBOLS)]
        ts_ns = BASE_TS_NS + seq * 1_000_000
        envelope = {"source": source, "seq": seq, "recv_ns": time.time_ns()}
        kind = seq % 100
        if kind < 60:
            event: Event = Trade(symbol=symbol, price=100 + seq % 50 / 100, size=1 + seq % 9, ts_ns=ts_ns,
                                 conditions=("17",) if seq % 3 else (), **envelope)
        elif kind < 90:
            event = Quote(symbol=symbol, bid=99.5, bid_size=100, ask=None if seq % 7 == 0 else 100.5, ask_size=200,
                          ts_ns=ts_ns, **envelope)
        elif kind < 98:
            event = Depth(symbol=symbol, action="add", side="bid", price=99.0, size=10, order_id=str(seq),
                          ts_ns=ts_ns, **envelope)
        elif kind == 98:
            event = System(name="STATS", fields=("x",), connected=True, ts_ns=ts_ns, **envelope)
        else:
            event = Heartbeat(ts_ns=ts_ns, **envelope)
        events.append(event)
    return events


def stored_kinds(events: Sequence[Event]) -> list[Event]:
    """The events that have a table (heartbeats are published but not stored)."""
    return [event for event in events if table_for(event) is not None]


def stored_count(store: Store) -> int:
    """Rows across the event tables, without FINAL; 0 while the store is unreachable."""
    try:
        return sum(store.query(f"SELECT count() FROM {store.table(t)}")[0][0] for t in EVENT_TABLES)
    except StorageError:
        return 0


def expected_identities(generated: Sequence[Event]) -> set[tuple[str, Identity]]:
    """(table, identity) of every stored kind among ``generated``: what storage must hold, once each."""
    return {(table, identity_of(table, event)) for event in generated if (table := table_for(event)) is not None}


def stored_identities(store: Store) -> Counter[tuple[str, Identity]]:
    """How many rows storage holds of each (table, identity), without FINAL."""
    stored: Counter[tuple[str, Identity]] = Counter()
    for table, columns in IDENTITY_COLUMNS.items():
        rows = store.query(f"SELECT {', '.join(columns)} FROM {store.table(table)}")
        stored.update((table, stored_identity(table, row)) for row in rows)
    return stored


def assert_stored_exactly_once(store: Store, generated: Sequence[Event]) -> None:
    expected = expected_identities(generated)
    stored = stored_identities(store)
    lost = sorted(expected - stored.keys())
    doubled = sorted(key for key, times in stored.items() if times > 1)
    unexpected = sorted(stored.keys() - expected)
    assert not (lost or doubled or unexpected), (
        f"lost {len(lost)} {lost[:5]}, doubled {len(doubled)} {doubled[:5]}, unexpected {len(unexpected)} {unexpected[:5]}"
    )
    assert stored_count(store) == len(expected), "count() without FINAL differs from the number of distinct events generated"


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Remove every topic of a test's prefix (its consumer groups' offsets go with the topics)."""
    from confluent_kafka.admin import AdminClient

    quiet = logging.getLogger("tests.kafka.cleanup")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": quiet})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix + ".")]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            future.result(timeout=60)
