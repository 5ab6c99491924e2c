"""Redundant pair: two collectors (Kafka bus, ClickHouse server, each its own simulator process as if each
had its own IQConnect) with ``fleet.standby_critical`` on; a critical symbol is watched by its owner and
by the other as hot standby. Both simulators replay the same tick file, except that one print's size is
altered in the standby's or the owner's copy.

Proved: every trade stored once (``count()`` without FINAL equals the distinct prints the two feeds
delivered, compared by content identity), the symbol's quotes stored from the owner's source only (the
standby's counted as not published), and the altered minute reported by the consistency check as a
``feed_inconsistent`` alert naming the symbol and the minute, while the next minute, equal on both
feeds, is compared without a word.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from collectors.iqfeed.simulator.wire import EasternClock, TimeText
from config import load_settings
from runtime.consistency import MINUTE_NS, minute_text
from runtime.engine import Engine
from tests.conftest import unique_name
from tests.integration._simulator_process import start_simulator
from tests.integration.pipeline import delete_topics, wait_until

pytestmark = pytest.mark.timeout(240)
SYMBOL = "AAPL"
SPEED = 20  # replay speed: the file's 9 minutes in about 27 s
REPLAY_S = 540
CLOSE_S = 2.0
US = 1_000_000
PRINT_EVERY_US = 1_500_000
ALTERED = 40  # the print at 90 s: inside the second minute, the first one digested whole
ALTERED_BY = 7


def _replay_files(tmp: Path) -> tuple[Path, Path, list[tuple[int, float, int]]]:
    """The same prints (from 30 s into a minute, for REPLAY_S) twice, one print's size altered in
    the second file (its cumulative volume left alone, as a feed fault would); and the prints' identities
    without the time (total volume, price, size), both files' together."""
    anchor = EasternClock().now() // (60 * US) * (60 * US) - 10 * 60 * US  # a minute start, ten minutes ago
    text = TimeText()
    rows, identities = [], []
    volume = 1_000
    for k in range(REPLAY_S * US // PRINT_EVERY_US):
        size = 100 + k
        volume += size
        price = 10 + (k % 7) / 100
        stamp = text.history_timestamp(anchor + 30 * US + k * PRINT_EVERY_US)
        rows.append([stamp, f"{price:.2f}", str(size), str(volume), f"{price - 0.01:.2f}", f"{price + 0.01:.2f}",
                     str(k + 1), "C", "11", "", "0", ""])
        identities.append((volume, round(price, 2), size))
    original, altered = tmp / "feed-a.csv", tmp / "feed-b.csv"
    original.write_text("".join(",".join(r) + ",\n" for r in rows), encoding="latin-1")
    rows[ALTERED][2] = str(int(rows[ALTERED][2]) + ALTERED_BY)
    altered.write_text("".join(",".join(r) + ",\n" for r in rows), encoding="latin-1")
    volume_at, price_at, size_at = identities[ALTERED]
    return original, altered, [*identities, (volume_at, price_at, size_at + ALTERED_BY)]


def _simulator(tmp: Path, name: str, replay: Path) -> tuple[subprocess.Popen, dict[str, int]]:
    return start_simulator(tmp / f"{name}.log", "--symbols", SYMBOL, "--rate", "0", "--replay", str(replay),
                           "--replay-symbol", SYMBOL, "--speed", str(SPEED))


def _engine(name: str, prefix: str, bootstrap: str, store, tmp: Path, ports: dict[str, int]) -> Engine:
    settings = load_settings(
        data_dir=tmp / name, instance_id=name,
        feed={"mode": "iqconnect", "supervise": False, "host": "127.0.0.1", "client_name": name, "symbols": [],
              "catch_up": False, **{f"{kind}_port": port for kind, port in ports.items()}},
        bus={"kind": "kafka"},
        kafka={"bootstrap_servers": bootstrap, "topic_prefix": prefix, "consumer_group": f"{prefix}-writer",
               "partitions": 2, "session_timeout_ms": 6000},
        fleet={"assignment_partitions": 8, "status_interval_s": 0.5, "stale_after_s": 4, "standby_critical": True,
               "consistency_close_s": CLOSE_S, "consistency_wait_s": 60},
        storage={"backend": "server", "database": store.database}, monitoring={"enabled": False},
    )
    return Engine(settings, store=store).start()


def test_a_redundant_pair_stores_one_copy_reports_a_difference_injected_into_one_feed_and_survives_a_takeover(
        kafka_bootstrap, server_store, tmp_path):
    prefix = unique_name("red")
    original, altered, delivered = _replay_files(tmp_path)
    simulators = {name: _simulator(tmp_path, name, replay) for name, replay in (("sa", original), ("sb", altered))}
    engines: dict[str, Engine] = {}
    trades, quotes = server_store.table("trades"), server_store.table("quotes")

    def quote_sources() -> set[str]:
        return {s for (s,) in server_store.query(f"SELECT DISTINCT source FROM {quotes} WHERE symbol = '{SYMBOL}'")}

    try:
        engines["a"] = _engine("a", prefix, kafka_bootstrap, server_store, tmp_path, simulators["sa"][1])
        engines["b"] = _engine("b", prefix, kafka_bootstrap, server_store, tmp_path, simulators["sb"][1])
        a, b = engines["a"], engines["b"]
        wait_until(lambda: all(len(e.fleet_view().live) == 2 and e.status().fleet.membership.partitions
                               for e in (a, b)), 60, "both collectors in the group, each seeing the other")
        a.start_symbol(SYMBOL, critical=True, by="ops")
        wait_until(lambda: all(SYMBOL in e.feed.watched() for e in (a, b)), 30,
                   "the critical symbol watched by its owner and by the standby")
        [standby] = [e for e in (a, b) if SYMBOL in e.status().redundancy.standby]
        [owner] = [e for e in (a, b) if e is not standby]
        assert SYMBOL not in owner.status().redundancy.standby
        [rules_owner] = [e for e in (a, b) if e.status().fleet.membership.rules_owner]

        def alert():
            rules_owner.evaluate_alerts()
            return {x.subject: x for x in rules_owner.alert_book.active() if x.rule == "feed_inconsistent"}

        wait_until(lambda: SYMBOL in alert(), 60, "the consistency check reporting the altered minute")
        wait_until(lambda: rules_owner.status().redundancy.check.comparisons >= 2, 30, "the agreeing minute compared")
        [(altered_ts,)] = server_store.query(
            f"SELECT ts_ns FROM {trades} WHERE size = {delivered[-1][2]} AND total_volume = {delivered[-1][0]}")
        minute = altered_ts - altered_ts % MINUTE_NS
        summary = alert()[SYMBOL].summary
        print("feed_inconsistent:", summary)
        assert minute_text(minute) in summary and "volume" in summary, summary
        assert minute_text(minute + MINUTE_NS) not in summary, "the next minute agreed on both feeds"
        assert rules_owner.status().redundancy.check.differences == 1
        assert quote_sources() == {owner.source}, "quotes of the standby symbol from its owner only"
        assert standby.status().redundancy.standby_unpublished > 0, "the standby's quotes were counted, not published"
        assert owner.status().redundancy.standby_unpublished == 0

        # Takeover mid-replay: the owner leaves; the standby, already watching, owns the symbol and publishes.
        owner.stop(drain_timeout_s=5)
        wait_until(lambda: not standby.status().redundancy.standby, 30, "the standby owning the symbol")
        assert SYMBOL in standby.feed.watched()
        held = standby.status().redundancy.standby_unpublished
        wait_until(lambda: standby.source in quote_sources(), 30, "the new owner's quotes stored")
        wait_until(lambda: server_store.query(f"SELECT uniqExact(total_volume, price, size) FROM {trades}")[0][0]
                   >= len(delivered), 90, "every print of both feeds stored")
        time.sleep(2)  # a late batch would show as a duplicate below
        rows = server_store.query(f"SELECT total_volume, round(price, 2), size FROM {trades} WHERE symbol = '{SYMBOL}'")
        stored = sorted((int(v), float(p), int(s)) for v, p, s in rows)
        assert stored == sorted(delivered), "every print of either feed stored exactly once (count() without FINAL)"
        assert standby.status().redundancy.standby_unpublished == held, "nothing held back once it owns the symbol"
    finally:
        for engine in engines.values():
            engine.stop(drain_timeout_s=5)
        for proc, _ in simulators.values():
            proc.kill()
            proc.wait(10)
        delete_topics(kafka_bootstrap, prefix)
