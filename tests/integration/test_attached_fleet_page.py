"""The Fleet page of a dashboard attached to a headless fleet (Kafka bus), as AppTest renders it against
the real broker and ClickHouse server: a collector that went silent is gone since its last status, not
healthy; each collector's own symbols and those it stands by for are apart; writers have their own table
with their lag; each critical symbol shows the consistency check's alert."""

from __future__ import annotations

import time

import pytest

from alerts.lifecycle import Alert
from alerts.store import AlertStore
from bus.fleet_channel import status_topic
from bus.keyed_topic import KeyedTopicWriter
from runtime.assignment import assignment_topic, encode_spec
from runtime.fleet_status import InstanceStatus, encode_status
from runtime.symbols import SymbolSpec
from storage.writer_status import WriterStatus, encode_writer_status, writer_key
from tests.conftest import unique_name
from tests.integration._feed_support import wait_until
from tests.integration.test_attached_dashboard import attached_env, run, writer_endpoint  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)
FLEET = "pages/fleet.py"
S = 1_000_000_000


def _collector(name: str, updated_ns: int, watched: tuple[str, ...], standby: tuple[str, ...] = ()) -> bytes:
    return encode_status(InstanceStatus(name, f"{name}@1", "running", "ok", (), (0, 1), 4, True, False, 500,
                                        len(watched), watched, {}, None, 0, updated_ns, standby))


def _table(app, column: str) -> dict[str, dict]:
    [frame] = [d.value for d in app.dataframe if column in d.value.columns]
    return {row[column]: row for row in frame.to_dict("records")}


def test_the_attached_fleet_page_shows_gone_collectors_standby_symbols_writers_and_consistency(
        attached_env, server_store, kafka_bootstrap, monkeypatch):
    prefix = unique_name("fvp")
    monkeypatch.setenv("TICKOPS_KAFKA__TOPIC_PREFIX", prefix)
    monkeypatch.setenv("TICKOPS_KAFKA__BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("TICKOPS_FLEET__STANDBY_CRITICAL", "true")
    run(FLEET)  # the attached runtime creates the fleet's topics
    now = time.time_ns()
    topics = KeyedTopicWriter(kafka_bootstrap, client_id=unique_name("test"))
    lag = WriterStatus("w1", "writer", "running", "ok", (), (f"{prefix}.trades[0]", f"{prefix}.quotes[0]"), 42,
                       {f"{prefix}.quotes": 2, f"{prefix}.trades": 40}, 310.0, 5000, "", False, now - 100 * S, now)
    topics.put(status_topic(prefix), {
        "c-live": _collector("c-live", now, ("AAPL", "SPY"), standby=("SPY",)),
        "c-gone": _collector("c-gone", now - 90 * S, ("MSFT",)),  # SIGKILLed 90 s ago (stale after 20 s)
        writer_key("w1"): encode_writer_status(lag),
    })
    topics.put(assignment_topic(prefix), {"SPY": encode_spec(SymbolSpec("SPY", True, False, 0.0, now, "ops", True))})
    topics.close()
    AlertStore(server_store).save([Alert("feed_inconsistent", "SPY", "critical", "firing",
                                         "2026-11-30 14:31 UTC: volume 185 (c1) != 195 (c2)", now, now, fired_ns=now)])
    from dashboard import resources

    view = resources.engine()
    assert wait_until(lambda: len(view.fleet_view().instances) == 2 and view.fleet_view().writers
                      and view.alert_book.active() and view.desired_symbols(), 20), view.fleet_view()

    app = run(FLEET)
    assert not app.exception, app.exception
    collectors = _table(app, "instance")
    assert collectors["c-gone"]["state"].startswith("gone since ") and collectors["c-gone"]["health"] == "—"
    assert (collectors["c-live"]["state"], collectors["c-live"]["health"]) == ("running", "ok")
    assert (collectors["c-live"]["owns"], collectors["c-live"]["stands by"]) == (1, "SPY")
    writers = _table(app, "writer")
    assert (writers["w1"]["lag"], writers["w1"]["lag by topic"], writers["w1"]["runs"]) == (
        42, "quotes 2 · trades 40", "own process")
    consistency = _table(app, "symbol")
    assert consistency["SPY"]["alert"].startswith("firing: 2026-11-30 14:31 UTC: volume 185 (c1) != 195 (c2)")
    assert consistency["SPY"]["latest comparison"] == "no comparison in this process"
    assert any("Stands by for (hot standby of critical symbols): SPY" in m.value for m in app.markdown)
