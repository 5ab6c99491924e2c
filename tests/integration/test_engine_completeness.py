"""End-of-day completeness through the whole engine, over real TCP against our simulator, on both backends.

The simulator replays the shared 2021 tick sample's first day (a real trading day, real
prints: some share time, price and size) as fast as the engine reads; the engine stores it.
Then the check runs for that day at an injected time after its close, never waiting for one:
against the feed's Total Volume (as the engine saw it live and as the stored trades carry
it) and the simulator's daily bar (lookup ``HDT``), recovering from its tick history
(lookup ``HTT``) what storage lacks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from alerts.rules import evaluate_rules
from collectors.iqfeed.client import LookupFailed, NoData
from collectors.iqfeed.lookup import LookupClient
from collectors.iqfeed.simulator import IQFeedSimulator
from config import FeedSettings, load_settings
from runtime.completeness.checker import DayChecker, DirectInsert
from runtime.completeness.days import check_after_ns
from runtime.completeness.job import CompletenessJob
from runtime.engine import Engine
from runtime.symbols import SymbolSpec
from storage.audit_trail import all_records
from storage.completeness import DayCheck, latest_checks, recent_checks
from storage.migrate import migrate
from storage.store import Store, sql_string
from tests.conftest import CLICKHOUSE_PORT
from tests.integration._feed_support import running_simulator, settings_for
from tests.integration.pipeline import wait_until
from tests.integration.simulator_client import LineClient

pytestmark = pytest.mark.timeout(180)

SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")
ROOT = Path(__file__).resolve().parents[2]
SYMBOL = "SMPL"
DAY = date(2021, 3, 1)
GRACE_S = 600.0
AFTER_THE_CLOSE = check_after_ns(DAY, GRACE_S) or 0  # 2021-03-01 20:10 Eastern


def _rows(since: str = "2021-03-01", until: str = "2021-03-02") -> list[list[str]]:
    """Sample rows (lookup format, TotalVolume as IQFeed sent it) with ``since <= timestamp < until``."""
    lines = SAMPLE.read_text(encoding="latin-1").splitlines()
    return [line.split(",") for line in lines if line[:2] == "20" and since <= line[:26] < until]


def _replay_file(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("\r\n".join(",".join(row) for row in rows) + "\r\n", encoding="latin-1")
    return path


DAY_ROWS = _rows() if SAMPLE.exists() else []
DAY_TRADES = len(DAY_ROWS)
DAY_VOLUME = sum(int(row[2]) for row in DAY_ROWS)


@contextmanager
def _replaying(path: Path) -> Iterator[IQFeedSimulator]:
    with running_simulator(symbols=[SYMBOL], replay=path, replay_symbol=SYMBOL, speed=None) as sim:
        yield sim


def _settings(store: Store, tmp_path: Path, sim: IQFeedSimulator):
    # A replay as fast as the engine reads keeps both cores busy: a late heartbeat must not drop the feed
    # (a replayed day's trades missed live cannot be backfilled by outage window, whose times are today's).
    feed = settings_for(sim, symbols=[SYMBOL], lookup_timeout_s=20, heartbeat_timeout_s=30).model_dump()
    return load_settings(data_dir=tmp_path, feed={**feed, "mode": "iqconnect"}, storage={"database": store.database},
                         # The job stays off: the test runs it at an injected time instead of the wall clock's.
                         completeness={"enabled": False, "grace_s": GRACE_S})


@contextmanager
def _engine_storing(store: Store, tmp_path: Path, sim: IQFeedSimulator, trades: int) -> Iterator[Engine]:
    """An engine fed by ``sim`` once it has stored the ``trades`` replayed; stopped afterwards."""
    engine = Engine(_settings(store, tmp_path, sim), store=store).start()
    try:
        wait_until(lambda: _count(store) == trades, 90, f"the {trades} replayed trades stored")
        yield engine
    finally:
        engine.stop()


def _checked(engine: Engine) -> list[DayCheck]:
    """Run the engine's job at AFTER_THE_CLOSE until it checks: it first waits until storage holds every
    trade that was on the bus (the writer reports what it has stored once a second)."""
    made: list[DayCheck] = []
    wait_until(lambda: bool(made.extend(engine.completeness.run(AFTER_THE_CLOSE)) or made), 30, "the day checked")
    return made


def _count(store: Store, where: str = "1") -> int:
    return store.query(f"SELECT count() FROM {store.table('trades')} WHERE symbol = {sql_string(SYMBOL)} "
                       f"AND {where}")[0][0]


def _stored(store: Store) -> tuple[int, int, int, int]:
    """count() and sum(size) without FINAL, distinct content identities, backfilled rows."""
    (count, volume, identities, backfilled), = store.query(
        f"SELECT count(), sum(size), uniqExact(ts_ns, total_volume, price, size), sum(backfilled) "
        f"FROM {store.table('trades')} WHERE symbol = {sql_string(SYMBOL)}")
    return int(count), int(volume), int(identities), int(backfilled)


def _delete_trades(store: Store, total_volumes: list[int]) -> None:
    """Trades lost from storage (a mutation on both backends: asynchronous, so wait for it)."""
    before = _count(store)
    listed = ", ".join(map(str, total_volumes))
    store.execute(f"ALTER TABLE {store.table('trades')} DELETE WHERE symbol = {sql_string(SYMBOL)} "
                  f"AND total_volume IN ({listed})")
    wait_until(lambda: _count(store) == before - len(total_volumes), 60, "the deletion of the trades")


def _victims() -> list[list[str]]:
    """Every 97th print, the day's last five (the stored trades' highest Total Volume goes with them) and the
    second of the first pair sharing time, price and size (only Total Volume tells it from its twin)."""
    twin = next(DAY_ROWS[i + 1] for i in range(DAY_TRADES - 1)
                if [DAY_ROWS[i][k] for k in (0, 1, 2)] == [DAY_ROWS[i + 1][k] for k in (0, 1, 2)])
    chosen = {row[3]: row for row in [*DAY_ROWS[::97], *DAY_ROWS[-5:], twin]}
    return list(chosen.values())


def _read_a_while(client: LineClient) -> bool:
    client.lines_for(0.1)  # keeps the replay going: as fast as the client reads
    return True


@needs_sample
def test_the_lookup_port_answers_the_daily_bar_of_a_replayed_day_with_its_volume(tmp_path):
    with _replaying(_replay_file(tmp_path / "day.csv", DAY_ROWS)) as sim, LineClient(sim.level1_port) as watcher:
        watcher.send(f"w{SYMBOL}")  # a replay starts with its symbol's first watch; lookups answer what it played
        wait_until(lambda: _read_a_while(watcher) and sim.stats.replay_finished, 60, "the replay's end")
        lookup = LookupClient(settings_for(sim))
        try:
            (bar,) = lookup.daily_bars(SYMBOL, DAY, DAY)
            assert bar.volume == DAY_VOLUME
            assert float(bar.high) == max(float(r[1]) for r in DAY_ROWS)
            with pytest.raises(NoData):
                lookup.daily_bars(SYMBOL, date(2021, 3, 2), date(2021, 3, 2))
        finally:
            lookup.close()


@needs_sample
def test_a_day_fully_stored_is_reported_complete(store, tmp_path):
    with _replaying(_replay_file(tmp_path / "day.csv", DAY_ROWS)) as sim, \
            _engine_storing(store, tmp_path, sim, DAY_TRADES) as engine:
        (check,) = _checked(engine)
    assert (check.day, check.symbol, check.verdict) == (DAY, SYMBOL, "complete"), check.detail
    assert (check.stored_volume, check.stored_trades, check.feed_volume, check.bar_volume) == (
        DAY_VOLUME, DAY_TRADES, DAY_VOLUME, DAY_VOLUME)
    assert (check.trades_recovered, check.history_trades) == (0, -1)
    assert latest_checks(store, DAY, DAY) == [check] == recent_checks(store, 30)
    assert engine.completeness.incomplete_days(AFTER_THE_CLOSE) == {}


@needs_sample
def test_trades_deleted_from_storage_are_detected_backfilled_once_and_the_day_proved_complete(store, tmp_path):
    victims = _victims()
    with _replaying(_replay_file(tmp_path / "day.csv", DAY_ROWS)) as sim, \
            _engine_storing(store, tmp_path, sim, DAY_TRADES) as engine:
        _delete_trades(store, [int(row[3]) for row in victims])
        (check,) = _checked(engine)
        assert engine.completeness.run(AFTER_THE_CLOSE + 60 * 10**9) == []  # a day is checked once
        checker = engine._day_checker()
        assert checker is not None
        (again,) = checker.check(DAY, [SYMBOL], AFTER_THE_CLOSE + 120 * 10**9)  # re-checked by hand
    assert check.verdict == "complete", check.detail
    assert (check.trades_recovered, check.volume_recovered) == (len(victims), sum(int(r[2]) for r in victims))
    assert (check.stored_trades, check.stored_volume, check.history_trades) == (DAY_TRADES, DAY_VOLUME, DAY_TRADES)
    assert (check.feed_volume, check.bar_volume) == (DAY_VOLUME, DAY_VOLUME)
    assert _stored(store) == (DAY_TRADES, DAY_VOLUME, DAY_TRADES, len(victims)), "a trade lost or doubled"
    assert (again.verdict, again.trades_recovered, again.stored_trades) == ("complete", 0, DAY_TRADES)
    assert latest_checks(store, DAY, DAY) == [again], "a re-check replaces the day's verdict"


@needs_sample
def test_the_days_last_prints_lost_after_the_engine_saw_them_are_caught_by_the_total_volume_seen_live(store, tmp_path):
    """The stored trades' highest Total Volume goes with them, and the daily bar's tolerance hides a few
    hundred shares: only the Total Volume the engine saw live says they are missing."""
    tail = DAY_ROWS[-3:]
    tail_volume = sum(int(row[2]) for row in tail)
    assert tail_volume < DAY_VOLUME / 100, "the test needs a loss within the daily bar's tolerance"
    with _replaying(_replay_file(tmp_path / "day.csv", DAY_ROWS)) as sim, \
            _engine_storing(store, tmp_path, sim, DAY_TRADES) as engine:
        _delete_trades(store, [int(row[3]) for row in tail])
        assert engine.feed_volumes.volume(SYMBOL, DAY) == DAY_VOLUME
        (check,) = _checked(engine)
    assert (check.verdict, check.trades_recovered, check.volume_recovered) == ("complete", 3, tail_volume), check.detail
    assert _stored(store) == (DAY_TRADES, DAY_VOLUME, DAY_TRADES, 3)


@needs_sample
def test_a_shortfall_the_tick_history_cannot_fill_is_reported_incomplete_and_alerts(store, tmp_path):
    """The feed's Total Volume counts the pre-market, but IQFeed's history (the replay) starts at 09:30."""
    from_open = _rows(since="2021-03-01 09:30")
    with _replaying(_replay_file(tmp_path / "from_open.csv", from_open)) as sim, \
            _engine_storing(store, tmp_path, sim, len(from_open)) as engine:
        (check,) = _checked(engine)
        observation = engine.observe(AFTER_THE_CLOSE)
        findings = [f for f in evaluate_rules(observation, engine.settings.alerts) if f.rule == "day_incomplete"]
        changed = engine.alert_book.evaluate(findings, AFTER_THE_CLOSE)
    stored_volume = sum(int(row[2]) for row in from_open)
    assert check.verdict == "incomplete", check.detail
    assert (check.stored_volume, check.feed_volume, check.bar_volume) == (stored_volume, DAY_VOLUME, stored_volume)
    assert (check.trades_recovered, check.history_trades) == (0, len(from_open))
    assert _stored(store)[:3] == (len(from_open), stored_volume, len(from_open))
    assert observation.incomplete_days == {DAY.isoformat(): (SYMBOL,)}
    (alert,) = [a for a in changed if a.rule == "day_incomplete"]
    assert (alert.subject, alert.severity, alert.state) == (DAY.isoformat(), "warning", "firing")


@needs_sample
def test_the_command_proves_a_past_day_complete_and_a_rerun_recovers_nothing(server_store, tmp_path):
    victims = _victims()[:20]
    with _replaying(_replay_file(tmp_path / "day.csv", DAY_ROWS)) as sim:
        with _engine_storing(server_store, tmp_path, sim, DAY_TRADES):
            pass
        _delete_trades(server_store, [int(row[3]) for row in victims])
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")},
            "PYTHONPATH": str(ROOT), "TICKOPS_DATA_DIR": str(tmp_path), "TICKOPS_FEED__MODE": "iqconnect",
            "TICKOPS_FEED__LOOKUP_PORT": str(sim.lookup_port), "TICKOPS_STORAGE__BACKEND": "server",
            "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT), "TICKOPS_STORAGE__DATABASE": server_store.database,
        }

        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "runtime.completeness", *args], cwd=tmp_path, env=env,
                                  check=False, capture_output=True, text=True, timeout=120)

        first = cli("--day", DAY.isoformat())
        again = cli("--day", DAY.isoformat(), "--symbol", SYMBOL)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{SYMBOL:<12} complete" in first.stdout and "1 of 1 symbols complete" in first.stdout
    assert again.returncode == 0, again.stdout + again.stderr
    (check,) = latest_checks(server_store, DAY, DAY)
    assert (check.verdict, check.trades_recovered, check.stored_trades) == ("complete", 0, DAY_TRADES)
    assert _stored(server_store) == (DAY_TRADES, DAY_VOLUME, DAY_TRADES, len(victims))
    audited = [(r.seq, r.action, r.subject) for r in all_records(server_store) if r.source == "completeness"]
    assert audited == [(1, "completeness_check", "2021-03-01"), (2, "completeness_check_done", "2021-03-01"),
                       (3, "completeness_check", "2021-03-01"), (4, "completeness_check_done", "2021-03-01")]
    first_done = next(r for r in all_records(server_store) if r.source == "completeness" and r.seq == 2)
    assert f"trades_recovered={len(victims)}" in first_done.details


def _job(store: Store, sim_or_port: IQFeedSimulator | int, wanted: list[SymbolSpec], behind: str = "",
         last_trade_ns: int | None = None) -> CompletenessJob:
    """The engine's job without an engine: recovered trades go straight into storage, as the command does."""
    port = sim_or_port if isinstance(sim_or_port, int) else sim_or_port.lookup_port
    settings = load_settings(completeness={"grace_s": GRACE_S})
    lookup = LookupClient(FeedSettings(lookup_port=port, lookup_timeout_s=20))
    insert = DirectInsert(store, "test.completeness")
    return CompletenessJob(settings, store, wanted=lambda: wanted, behind=lambda: behind,
                           last_trade_ns=lambda symbol, day: last_trade_ns,
                           checker=lambda: DayChecker(store, lookup, deliver=insert, checked_by=insert.source))


def _spec(symbol: str, wanted_since_ns: int) -> SymbolSpec:
    return SymbolSpec(symbol, level1=True, depth=False, silent_after_s=0.0, updated_ns=wanted_since_ns, updated_by="t")


@needs_sample
def test_a_symbol_wanted_all_day_with_nothing_stored_is_recovered_whole_and_one_wanted_only_later_is_not_held(
        store, tmp_path):
    migrate(store)
    with _replaying(_replay_file(tmp_path / "day.csv", DAY_ROWS)) as sim, LineClient(sim.level1_port) as watcher:
        watcher.send(f"w{SYMBOL}")
        wait_until(lambda: _read_a_while(watcher) and sim.stats.replay_finished, 60, "the replay's end")
        late = _spec("LATE", AFTER_THE_CLOSE)  # started after the day was over, nothing stored that day
        job = _job(store, sim, [_spec(SYMBOL, 0), late])
        checks = job.run(AFTER_THE_CLOSE)
        assert job.run(AFTER_THE_CLOSE + 60 * 10**9) == []
    # The lookback (4 days) also takes in Thursday and Friday before: nothing traded there, per IQFeed's daily bars.
    assert [(c.day, c.symbol, c.verdict, c.trades_recovered, c.stored_trades, c.bar_volume) for c in checks] == [
        (date(2021, 2, 25), SYMBOL, "complete", 0, 0, 0), (date(2021, 2, 26), SYMBOL, "complete", 0, 0, 0),
        (DAY, SYMBOL, "complete", DAY_TRADES, DAY_TRADES, DAY_VOLUME)], checks
    assert checks[-1].feed_volume == DAY_VOLUME
    assert _stored(store) == (DAY_TRADES, DAY_VOLUME, DAY_TRADES, DAY_TRADES)


def test_the_check_waits_while_storage_is_behind_and_checks_nothing(chdb_store):
    migrate(chdb_store)
    job = _job(chdb_store, 9, [_spec(SYMBOL, 0)], behind="12 events in the spool")  # nothing listens on port 9
    assert job.run(AFTER_THE_CLOSE) == []
    assert latest_checks(chdb_store, DAY, DAY) == []


def test_a_day_the_feed_still_trades_is_left_for_a_later_run(chdb_store):
    """A synthetic market trades around the clock: its trades of the day may still be on their way to storage."""
    migrate(chdb_store)
    still_trading = _job(chdb_store, 9, [_spec(SYMBOL, 0)], last_trade_ns=AFTER_THE_CLOSE - 1)  # nothing on port 9
    assert still_trading.run(AFTER_THE_CLOSE) == []
    with pytest.raises(LookupFailed):  # one grace later the day is quiet: the check asks for its daily bar
        still_trading.run(AFTER_THE_CLOSE + int(GRACE_S * 1e9))
    assert latest_checks(chdb_store, DAY, DAY) == []


def test_the_job_runs_with_a_real_feed_and_not_with_the_embedded_simulator_unless_told(chdb_store):
    def enabled(**settings: object) -> bool:
        return CompletenessJob(load_settings(**settings), chdb_store, checker=lambda: None, wanted=list).enabled

    assert enabled(feed={"mode": "iqconnect"})
    assert not enabled(feed={"mode": "simulator"})
    assert enabled(feed={"mode": "simulator"}, completeness={"enabled": True})
    assert not enabled(feed={"mode": "iqconnect"}, completeness={"enabled": False})
