"""The Fleet page's rows: a collector or writer that left is "gone since" its last status with no health
shown, each collector's own symbols apart from those it stands by for, each writer's lag, and the
consistency check's latest verdict per critical symbol."""

from __future__ import annotations

from alerts.lifecycle import Alert
from dashboard.fleet_tables import LagHistory, collector_rows, consistency_rows, state_text, writer_rows
from runtime.consistency import Verdict
from runtime.fleet_status import FleetView, InstanceStatus
from runtime.symbols import SymbolSpec
from storage.writer_status import WriterStatus

S = 1_000_000_000
NOW = 1_000 * S  # 00:16:40 UTC


def collector(name: str, *, silent_s: float = 0, state: str = "running", watched=("AAPL", "SPY"),
              standby=()) -> InstanceStatus:
    return InstanceStatus(name, f"{name}@1", state, "ok", (), (0, 1), 4, False, False, 500, 1, tuple(watched), {},
                          3, 0, NOW - int(silent_s * S), tuple(standby))


def writer(name: str, *, silent_s: float = 0, lag: int = 0) -> WriterStatus:
    return WriterStatus(name, "writer", "running", "ok", (), ("p.trades[0]", "p.quotes[0]"), lag,
                        {"p.quotes": 1, "p.trades": lag - 1}, 12.5, 900, "", True, 0, NOW - int(silent_s * S))


def view(collectors=(), writers=()) -> FleetView:
    return FleetView(None, tuple(collectors), None, NOW, 15.0, writers=tuple(writers))


def test_an_instance_silent_past_the_bound_is_gone_since_its_last_status_and_shows_no_health():
    fleet = view([collector("c1"), collector("c2", silent_s=16), collector("c3", silent_s=100, state="stopped")])
    rows = {row["instance"]: row for row in collector_rows(fleet)}
    assert (rows["c1"]["state"], rows["c1"]["health"]) == ("running", "ok")
    assert (rows["c2"]["state"], rows["c2"]["health"]) == ("gone since 00:16:24 UTC", "—")
    assert (rows["c3"]["state"], rows["c3"]["health"]) == ("stopped at 00:15:00 UTC", "—")
    assert state_text(fleet, collector("c4", silent_s=15)) == "running", "at the bound it still counts"
    assert fleet.departed == {"c2": NOW - 16 * S, "c3": NOW - 100 * S}


def test_a_collector_row_shows_what_it_owns_apart_from_what_it_stands_by_for():
    [row] = collector_rows(view([collector("c1", watched=("AAPL", "MSFT", "SPY"), standby=("SPY",))]))
    assert (row["watched"], row["owns"], row["stands by"]) == (3, 2, "SPY")


def test_a_writer_row_shows_its_partitions_lag_per_topic_and_storing_rate():
    [row] = writer_rows(view(writers=[writer("c1", lag=8)]))
    assert (row["writer"], row["runs"], row["partitions"], row["lag"], row["lag by topic"], row["rows/s"]) == (
        "c1", "in its collector", 2, 8, "quotes 1 · trades 7", 12.5)
    [gone] = writer_rows(view(writers=[writer("w2", silent_s=60, lag=8)]))
    assert (gone["state"], gone["health"]) == ("gone since 00:15:40 UTC", "—")


def test_the_lag_plot_takes_each_status_once_and_only_from_responsive_writers():
    history = LagHistory(keep=3)
    fleet = view(writers=[writer("w1", lag=5), writer("w2", silent_s=60, lag=9)])
    history.add(fleet)
    history.add(fleet)  # the page refreshed before a new status came
    assert [(p.writer, p.lag) for p in history.points()] == [("w1", 5)]
    for step in range(1, 4):
        history.add(FleetView(None, (), None, NOW + step * S, 15.0, writers=(writer("w1", silent_s=-step, lag=step),)))
    assert [p.lag for p in history.points()] == [1, 2, 3], "bounded: the oldest points go"


def test_each_critical_symbol_shows_the_latest_comparison_here_and_its_alert_from_storage():
    desired = [SymbolSpec("SPY", True, False, 0.0, 1, "x", True), SymbolSpec("QQQ", True, False, 0.0, 1, "x", True),
               SymbolSpec("IWM", True, False, 0.0, 1, "x", True), SymbolSpec("AAPL", True, False, 0.0, 1, "x")]
    verdicts = {"SPY": Verdict(60 * S, ("volume 1 (c1) != 2 (c2)",)), "QQQ": Verdict(60 * S, ())}
    alerts = [Alert("feed_inconsistent", "SPY", "critical", "firing", "1970-01-01 00:01 UTC: volume", 1, 1)]
    rows = {row["symbol"]: row for row in consistency_rows(desired, verdicts, alerts)}
    assert set(rows) == {"SPY", "QQQ", "IWM"}, "critical symbols only"
    assert rows["SPY"]["latest comparison"] == "1970-01-01 00:01 UTC: differ: volume 1 (c1) != 2 (c2)"
    assert rows["SPY"]["alert"] == "firing: 1970-01-01 00:01 UTC: volume"
    assert (rows["QQQ"]["latest comparison"], rows["QQQ"]["alert"]) == ("1970-01-01 00:01 UTC: agree", "none")
    assert rows["IWM"]["latest comparison"] == "no comparison in this process"
