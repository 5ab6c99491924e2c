"""Helpers for the backfill tests: an engine on a simulator of the test's own, a writer that
can be held still, replays built from the shared tick sample, and the check against the
simulator's own record of every trade it made.

The truth is the simulator's per-symbol tick history (what HTT answers from): between the
first and the last trade the engine received live, every trade the simulator made must
be stored exactly once, counted with ``count()`` without FINAL.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from collectors.iqfeed.simulator import IQFeedSimulator
from collectors.iqfeed.simulator.market import Tick
from collectors.iqfeed.simulator.wire import EASTERN, PRICE_SCALE, EasternClock, TimeText
from config import load_settings
from events import Event
from runtime.backfill import BACKFILL_MARGIN_NS, BACKFILL_SETTLE_NS
from runtime.engine import BACKFILL_INTERVAL_S, Engine
from storage.store import Store, sql_string
from tests.integration._feed_support import running_simulator
from tests.integration.pipeline import wait_until
from tests.integration.simulator_client import LineClient
from tests.integration.test_engine import _record_ingest

SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
US = 1_000_000

Identity = tuple[int, int, float, int]  # ts_ns, total_volume, price, size


# ---------------------------------------------------------------- replays of the sample


@dataclass(frozen=True)
class Print:
    """One sample trade placed ``at_us`` after the replay's first tick; ``fields`` are the
    sample row's, without its timestamp and total volume (recounted in replay order)."""

    at_us: int
    price: str
    size: int
    rest: tuple[str, ...]  # Bid, Ask, TickID, Basis, MarketCenter, Conditions, Aggressor, DayCode


def sample_prints(first: str, last: str, speedup: int) -> list[Print]:
    """The sample's trades from ``first`` up to ``last`` (timestamp text), ``speedup`` times
    as dense: prints that share a time still share it."""
    rows = [line.split(",") for line in SAMPLE.read_text(encoding="latin-1").splitlines() if line[:2] == "20"]
    chosen = [row for row in rows if first <= row[0] < last]
    start = _sample_us(chosen[0][0])
    return [Print((_sample_us(r[0]) - start) // speedup, r[1], int(r[2]), tuple(r[4:12])) for r in chosen]


def _sample_us(text: str) -> int:
    moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f")
    return int((moment - datetime(1970, 1, 1)) / timedelta(microseconds=1))


def shifted(prints: Sequence[Print], by_us: int) -> list[Print]:
    return [replace(p, at_us=p.at_us + by_us) for p in prints]


def write_replay(path: Path, prints: Sequence[Print], first_local_us: int, first_volume: int = 1_000) -> list[int]:
    """A tick-history file of ``prints`` in the given order, the first at ``first_local_us``
    (Eastern wall clock). TotalVolume counts up in file order, as IQFeed reports it; the
    volumes are returned (they name each print)."""
    text = TimeText()
    volume = first_volume
    lines, volumes = [], []
    for index, p in enumerate(prints):
        volume += p.size if index else 0
        volumes.append(volume)
        stamp = text.history_timestamp(first_local_us + p.at_us)
        lines.append(",".join([stamp, p.price, str(p.size), str(volume), *p.rest]) + ",")
    path.write_text("\n".join(lines) + "\n", encoding="latin-1")
    return volumes


@contextmanager
def replaying(path: Path, prints: Sequence[Print], symbol: str, offset_s: float) -> Iterator[tuple[IQFeedSimulator, list[int]]]:
    """A simulator replaying ``prints`` whose trade times run ``offset_s`` ahead of the wall
    clock (behind when negative), and the prints' total volumes. The replay clock is started
    here by a watch of our own (a replay starts on its symbol's first watch), so the offset
    does not depend on when the engine connects."""
    lead_s = 0.5
    started = time.monotonic()
    volumes = write_replay(path, prints, EasternClock().now() + int((lead_s + offset_s) * US))
    with running_simulator(symbols=[symbol], replay=path, replay_symbol=symbol, speed=1.0) as sim:
        time.sleep(max(0.0, started + lead_s - time.monotonic()))
        client = LineClient(sim.level1_port)
        try:
            client.send(f"w{symbol}")
            client.expect(f"P,{symbol}")
        finally:
            client.sock.close()
        yield sim, volumes


# ---------------------------------------------------------------- the engine under test


class WriterSwitch:
    """Holds the engine's writer job still (storage then lags behind the feed) and lets it go."""

    def __init__(self, engine: Engine) -> None:
        self._held = threading.Event()
        step = engine._writer_step

        def gated() -> None:
            if self._held.is_set():
                time.sleep(0.05)
                return
            step()

        engine._writer_step = gated  # type: ignore[method-assign]  # the writer job takes it at start()

    def hold(self) -> None:
        self._held.set()

    def release(self) -> None:
        self._held.clear()


@dataclass
class EngineRun:
    engine: Engine
    writer: WriterSwitch
    ingested: list[Event]


@contextmanager
def running_engine(store: Store, tmp_path: Path, sim: IQFeedSimulator, symbols: Sequence[str],
                   bus: dict | None = None, **feed: object) -> Iterator[EngineRun]:
    """An engine fed by ``sim`` (as if it were IQConnect), stopped (and drained) afterwards."""
    settings = load_settings(
        data_dir=tmp_path,
        feed={"mode": "iqconnect", "supervise": False, "host": "127.0.0.1", "level1_port": sim.level1_port,
              "level2_port": sim.level2_port, "admin_port": sim.admin_port, "lookup_port": sim.lookup_port,
              "symbols": list(symbols), "heartbeat_timeout_s": 2.0, "reconnect_initial_s": 0.05,
              "reconnect_max_s": 0.5, "symbol_silence_s": 0, "lookup_timeout_s": 10, **feed},
        storage={"database": store.database},
        bus=bus or {},
    )
    engine = Engine(settings, store=store)
    run = EngineRun(engine, WriterSwitch(engine), _record_ingest(engine))
    engine.start()
    try:
        yield run
    finally:
        engine.stop()


def drop_feed(sim: IQFeedSimulator, refuse_s: float) -> None:
    """Every connection drops and reconnects are refused for ``refuse_s``: the market goes on."""
    sim.faults.refuse_connections(refuse_s)
    sim.faults.drop_connections()


def level1_windows(engine: Engine) -> list:
    return [w for w in engine.status().outages if w.connection == "level1"]


def wait_for_backfills(engine: Engine, timeout_s: float = 60) -> None:
    """Until every Level 1 window has closed and has had the time to be backfilled."""
    wait_until(lambda: level1_windows(engine) and all(w.end_ns for w in level1_windows(engine)), timeout_s,
               "every Level 1 outage window to close")
    due_ns = max(w.end_ns for w in level1_windows(engine)) + BACKFILL_MARGIN_NS + BACKFILL_SETTLE_NS
    wait_until(lambda: time.time_ns() > due_ns + int((2 * BACKFILL_INTERVAL_S + 6) * 1e9), timeout_s,
               "the backfill job to have run after the last window became due")


def wait_for_trades(store: Store, symbol: str, since_ns: int, timeout_s: float = 30) -> None:
    table = store.table("trades")
    wait_until(lambda: store.query(f"SELECT count() FROM {table} WHERE symbol = {sql_string(symbol)} "
                                   f"AND recv_ns > {since_ns}")[0][0] > 0, timeout_s, f"live {symbol} trades stored")


# ---------------------------------------------------------------- the reconciliation


def eastern_us_to_ns(local_us: int) -> int:
    """UTC epoch ns of an Eastern wall-clock time in microseconds (the simulator's clock)."""
    naive = datetime(1970, 1, 1) + timedelta(microseconds=local_us)
    offset = naive.replace(tzinfo=EASTERN).utcoffset() or timedelta(0)
    return (local_us - int(offset.total_seconds()) * US) * 1000


def tick_identity(tick: Tick) -> Identity:
    return (eastern_us_to_ns(tick.time_us), tick.total_volume, tick.price / PRICE_SCALE, tick.size)


def stored_trades(store: Store, symbol: str) -> list[tuple[int, int, float, int, int]]:
    """(ts_ns, total_volume, price, size, backfilled) of every stored row, without FINAL."""
    rows = store.query(f"SELECT ts_ns, total_volume, price, size, backfilled FROM {store.table('trades')} "
                       f"WHERE symbol = {sql_string(symbol)}")
    return [(int(t), int(v), float(p), int(s), int(b)) for t, v, p, s, b in rows]


def assert_each_trade_stored_once(store: Store, sim: IQFeedSimulator, symbols: Sequence[str]) -> None:
    """Between a symbol's first and last live trade, storage holds each trade the simulator
    made exactly once: the same identities, and ``count()`` without FINAL equal to their number."""
    table = store.table("trades")
    for symbol in symbols:
        rows = stored_trades(store, symbol)
        live = [row[0] for row in rows if not row[4]]
        assert live, f"no live {symbol} trades stored"
        lo, hi = min(live), max(live)
        made = Counter(i for i in map(tick_identity, list(sim.hub.states[symbol].history)) if lo <= i[0] <= hi)
        stored = Counter(row[:4] for row in rows if lo <= row[0] <= hi)
        (count,), = store.query(f"SELECT count() FROM {table} WHERE symbol = {sql_string(symbol)} "
                                f"AND ts_ns >= {lo} AND ts_ns <= {hi}")
        missing, extra = made - stored, stored - made
        assert not missing and not extra and count == sum(made.values()), (
            f"{symbol}: simulator made {sum(made.values())} trades, count() says {count} stored; "
            f"missing {sum(missing.values())} {sorted(missing)[:3]}, doubled or unknown {sum(extra.values())} "
            f"{sorted(extra)[:3]}")
