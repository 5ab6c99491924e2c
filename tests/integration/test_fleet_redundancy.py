"""Redundant pair: two collectors (Kafka bus, ClickHouse server, each its own simulator process as if each
had its own IQConnect) with ``fleet.standby_critical`` on; a critical symbol is watched by its owner and
by the other as hot standby. Both simulators replay the same tick file, except that one print's size is
altered in the standby's or the owner's copy.

Proved: every trade stored once (``count()`` without FINAL equals the distinct prints the two feeds
delivered, compared by content identity), the symbol's quotes stored from the owner's source only (the
standby's counted as not published), and the altered minute reported by the consistency check as a
``feed_inconsistent`` alert naming the symbol and the minute, while the next minute, equal on both
feeds, is compared without a word.

Then with collector processes: the owner SIGKILLed mid-replay, the standby, already watching, loses no
print of the takeover gap although the catch-up (backfill) is off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus.keyed_topic import KeyedTopicReader, KeyedTopicWriter, ensure_compacted_topic
from collectors.iqfeed.simulator.wire import EasternClock, TimeText
from config import load_settings
from runtime.assignment import assignment_topic, encode_spec
from runtime.consistency import MINUTE_NS, minute_text
from runtime.engine import Engine
from bus.fleet_channel import STATUS_TOPIC_CONFIGS, status_topic
from runtime.fleet_status import InstanceStatus, decode_statuses
from runtime.symbols import SymbolSpec
from storage.migrate import migrate
from tests.conftest import CLICKHOUSE_PORT, unique_name
from tests.integration._simulator_process import ROOT, start_simulator
from tests.integration.pipeline import delete_topics, wait_until
from tests.integration.simulator_client import LineClient

pytestmark = pytest.mark.timeout(240)
SYMBOL = "AAPL"
SPEED = 20  # replay speed: the file's 9 minutes in about 27 s
REPLAY_S = 540
KILL_SPEED = 10  # the SIGKILL test's file: 12 minutes in 72 s, long enough for start-up, kill and takeover
KILL_REPLAY_S = 720
CLOSE_S = 2.0
US = 1_000_000
PRINT_EVERY_US = 1_500_000
ALTERED = 40  # the print at 90 s: inside the second minute, the first one digested whole
ALTERED_BY = 7


def _replay_files(tmp: Path, replay_s: int = REPLAY_S) -> tuple[Path, Path, list[tuple[int, float, int]]]:
    """The same prints (from 30 s into a minute, for ``replay_s``) twice, one print's size altered in
    the second file (its cumulative volume left alone, as a feed fault would); and the prints' identities
    without the time (total volume, price, size) in file order, the altered one last."""
    anchor = EasternClock().now() // (60 * US) * (60 * US) - 10 * 60 * US  # a minute start, ten minutes ago
    text = TimeText()
    rows, identities = [], []
    volume = 1_000
    for k in range(replay_s * US // PRINT_EVERY_US):
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


def _simulator(tmp: Path, name: str, replay: Path, speed: int = SPEED) -> tuple[subprocess.Popen, dict[str, int]]:
    return start_simulator(tmp / f"{name}.log", "--symbols", SYMBOL, "--rate", "0", "--replay", str(replay),
                           "--replay-symbol", SYMBOL, "--speed", str(speed))


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


def _collector(name: str, env: dict[str, str], ports: dict[str, int], tmp: Path) -> subprocess.Popen:
    log = open(tmp / f"{name}.log", "ab")  # noqa: SIM115 - the child writes to it until it ends
    try:
        return subprocess.Popen(
            [os.environ.get("TICKOPS_PYTHON", sys.executable), "-m", "runtime", "run"], cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "TICKOPS_INSTANCE_ID": name, "TICKOPS_FEED__CLIENT_NAME": name,
                 "TICKOPS_DATA_DIR": str(tmp / name),
                 **{f"TICKOPS_FEED__{kind.upper()}_PORT": str(port) for kind, port in ports.items()}})
    finally:
        log.close()


def _start_replay(ports: dict[str, int]) -> None:
    """Start a simulator's replay clock now with a watch of our own (a replay starts on its symbol's first
    watch): both markets then print the same trades at the same moments, like one market seen through two
    IQConnects, and a collector that watches late misses what was printed before."""
    client = LineClient(ports["level1"])
    try:
        client.send(f"w{SYMBOL}")
        client.expect(f"P,{SYMBOL}")
    finally:
        client.sock.close()


def test_with_a_standby_a_sigkilled_owner_loses_no_trade_of_its_critical_symbol_without_any_backfill(
        kafka_bootstrap, server_store, tmp_path):
    """Without the standby the survivor would start watching only after the session timeout and, with the
    catch-up off here, the prints of that gap would be missing."""
    prefix = unique_name("redkill")
    migrate(server_store)
    replay, _, delivered = _replay_files(tmp_path, replay_s=KILL_REPLAY_S)
    delivered = delivered[:-1]  # the altered copy is not replayed here
    ensure_compacted_topic(kafka_bootstrap, assignment_topic(prefix), 8)
    ensure_compacted_topic(kafka_bootstrap, status_topic(prefix), 1, configs=STATUS_TOPIC_CONFIGS)
    statuses = KeyedTopicReader(kafka_bootstrap, status_topic(prefix), client_id=unique_name("test"))
    statuses.start(1)

    def latest() -> dict[str, InstanceStatus]:
        statuses.poll(0.2)
        return {s.instance_id: s for s in decode_statuses(statuses.entries())[0]}  # collectors (writers publish too)

    simulators = {name: _simulator(tmp_path, name, replay, speed=KILL_SPEED) for name in ("s1", "s2")}
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKOPS_")}
    env.update({
        "TICKOPS_BUS__KIND": "kafka", "TICKOPS_KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "TICKOPS_KAFKA__TOPIC_PREFIX": prefix, "TICKOPS_KAFKA__CONSUMER_GROUP": f"{prefix}-writer",
        "TICKOPS_KAFKA__PARTITIONS": "2", "TICKOPS_KAFKA__SESSION_TIMEOUT_MS": "6000",
        "TICKOPS_STORAGE__BACKEND": "server", "TICKOPS_STORAGE__PORT": str(CLICKHOUSE_PORT),
        "TICKOPS_STORAGE__DATABASE": server_store.database, "TICKOPS_MONITORING__ENABLED": "false",
        "TICKOPS_FEED__MODE": "iqconnect", "TICKOPS_FEED__SUPERVISE": "false", "TICKOPS_FEED__HOST": "127.0.0.1",
        "TICKOPS_FEED__SYMBOLS": "[]", "TICKOPS_FEED__CATCH_UP": "false",
        "TICKOPS_FLEET__STANDBY_CRITICAL": "true", "TICKOPS_FLEET__STATUS_INTERVAL_S": "0.5",
        "TICKOPS_FLEET__STALE_AFTER_S": "4",
    })
    collectors = {name: _collector(name, env, simulators[sim][1], tmp_path) for name, sim in (("c1", "s1"), ("c2", "s2"))}
    trades = server_store.table("trades")
    try:
        wait_until(lambda: {n for n, st in latest().items() if st.partitions} == {"c1", "c2"}, 90,
                   "both collectors in the group")
        for _, ports in simulators.values():
            _start_replay(ports)
        control = KeyedTopicWriter(kafka_bootstrap, client_id="test-dashboard")
        control.put(assignment_topic(prefix), {SYMBOL: encode_spec(
            SymbolSpec(SYMBOL, True, False, 0.0, time.time_ns(), "test", True))}, timeout_s=30)
        control.close()

        def roles() -> tuple[str, str] | None:
            found = latest()
            owner = [n for n, st in found.items() if SYMBOL in st.watched and SYMBOL not in st.standby]
            standby = [n for n, st in found.items() if SYMBOL in st.standby]
            return (owner[0], standby[0]) if len(owner) == len(standby) == 1 else None

        wait_until(lambda: roles() is not None, 30, "an owner and a standby watching the critical symbol")
        owner, standby = roles()
        time.sleep(3)
        collectors[owner].send_signal(signal.SIGKILL)
        killed_ns = time.time_ns()
        wait_until(lambda: SYMBOL in latest()[standby].watched and SYMBOL not in latest()[standby].standby
                   and latest()[standby].updated_ns > killed_ns, 60, "the standby owning the symbol")
        assert (time.time_ns() - killed_ns) / 1e9 < KILL_REPLAY_S / KILL_SPEED - 10, "taken over mid-replay"
        last = delivered[-1]
        wait_until(lambda: server_store.query(
            f"SELECT count() FROM {trades} WHERE total_volume = {last[0]}")[0][0] >= 1, 120, "the last print stored")
        time.sleep(3)  # a late batch would show as a duplicate below
        rows = server_store.query(f"SELECT total_volume, round(price, 2), size FROM {trades} WHERE symbol = '{SYMBOL}'")
        stored = sorted((int(v), float(p), int(s)) for v, p, s in rows)
        first = min(delivered.index(identity) for identity in stored)
        assert stored == sorted(delivered[first:]), (
            f"every print from the first one watched to the end stored exactly once: "
            f"{len(set(delivered[first:]) - set(stored))} missing, {len(stored) - len(set(stored))} doubled")
        assert first < len(delivered) // 4, "the owner watched from early in the replay"
    finally:
        for proc in collectors.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in collectors.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for proc, _ in simulators.values():
            proc.kill()
            proc.wait(10)
        statuses.close()
        delete_topics(kafka_bootstrap, prefix)
