"""Replay of the shared IQFeed tick history over real sockets: every tick, in order, right values."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from collectors.iqfeed.simulator.wire import EASTERN
from tests.integration.simulator_client import connect, fields, running, wait_for

pytestmark = pytest.mark.timeout(60)
SAMPLE = Path("/work/shared/iqfeed/samples/history_ticks_2021-03-01_to_03.csv")
needs_sample = pytest.mark.skipif(not SAMPLE.exists(), reason="shared IQFeed sample not present")


def _sample_rows() -> list[list[str]]:
    return [line.split(",") for line in SAMPLE.read_text(encoding="latin-1").splitlines() if line[:2] == "20"]


@needs_sample
def test_replaying_the_sample_streams_every_tick_in_order_and_lookups_return_them() -> None:
    rows = _sample_rows()
    with running(replay=SAMPLE, speed=None, symbols=("XYZ",)) as sim, connect(sim.level1_port) as l1, \
            connect(sim.lookup_port) as lookup:
        l1.send("wXYZ")
        l1.expect("P,XYZ")
        wait_for(lambda: sim.stats.replay_finished, timeout=30)
        lines = l1.drain(0.5, limit=30)
        updates = [fields(x) for x in lines if x.startswith("Q,XYZ,")]
        assert len(updates) == len(rows) == 32_627
        for q, row in zip(updates, rows):
            # Q: last, size, time, market center, total volume, bid, ask ... contents, conditions
            assert (q[2], q[3], q[4], q[5], q[6], q[7], q[9], q[16]) == (
                row[1], row[2], row[0][11:], row[8], row[3], row[4], row[5], row[9])
            assert q[15][0] == row[7]
        # a client dates each trade by the latest heartbeat: it must carry the replayed date
        heartbeat_date = ""
        dated = 0
        for line in lines:
            if line.startswith("T,"):
                heartbeat_date = f"{line[2:6]}-{line[6:8]}-{line[8:10]}"
            elif line.startswith("Q,XYZ,"):
                assert heartbeat_date == rows[dated][0][:10]
                dated += 1
        assert dated == len(rows)

        lookup.send("HTX,XYZ,0,1,all")
        history = lookup.read_until(lambda x: x == "all,!ENDMSG!,", timeout=20)[:-1]
        assert [x.split(",")[2:] for x in history] == rows
        lookup.send("HTT,XYZ,20210302 000000,20210302 235959,,,,1,day2")
        day2 = lookup.read_until(lambda x: x == "day2,!ENDMSG!,", timeout=20)[:-1]
        assert [x.split(",")[2:] for x in day2] == [r for r in rows if r[0].startswith("2021-03-02")]
        lookup.send("HDX,XYZ,5,1,days")
        daily = [fields(x) for x in lookup.read_until(lambda x: x == "days,!ENDMSG!,")[:-1]]
        assert [d[2] for d in daily] == ["2021-03-01", "2021-03-02", "2021-03-03"]
        assert [int(d[7]) for d in daily] == [sum(int(r[2]) for r in rows if r[0].startswith(d[2])) for d in daily]


def _small_file(tmp_path: Path, seconds_apart: int, count: int) -> Path:
    path = tmp_path / "small.csv"
    path.write_text("".join(
        f"2021-03-01 10:00:{i * seconds_apart:02d}.000000,1.{50 + i}00,100,{100 * (i + 1)},1.4900,1.6000,"
        f"{i + 1},C,11,01,0,1,\r\n" for i in range(count)
    ))
    return path


def test_replay_speed_scales_the_gaps_between_ticks(tmp_path: Path) -> None:
    path = _small_file(tmp_path, seconds_apart=2, count=5)  # 8 s of market time
    with running(replay=path, speed=20.0, symbols=("XYZ",)) as sim, connect(sim.level1_port) as l1:
        l1.send("S,TIMESTAMPSOFF", "wXYZ")
        l1.expect("P,XYZ")
        arrivals = []
        for _ in range(5):
            l1.expect("Q,XYZ,", timeout=5)
            arrivals.append(time.monotonic())
        span = arrivals[-1] - arrivals[0]
        assert 0.3 < span < 1.2, span  # 8 s of market time at 20x: 0.4 s (as fast as possible: ~0)
        assert sim.stats.replay_ticks_sent == 5


def test_shift_to_today_moves_replayed_dates_to_today(tmp_path: Path) -> None:
    path = _small_file(tmp_path, seconds_apart=1, count=3)
    today = datetime.now(EASTERN).date().isoformat()
    with running(replay=path, speed=None, shift_to_today=True, symbols=("XYZ",)) as sim, \
            connect(sim.level1_port) as l1, connect(sim.lookup_port) as lookup:
        l1.send("wXYZ")
        wait_for(lambda: sim.stats.replay_finished)
        lookup.send("HTX,XYZ,0,1,s")
        rows = lookup.read_until(lambda x: x == "s,!ENDMSG!,")[:-1]
        assert [r.split(",")[2] for r in rows] == [f"{today} 10:00:0{i}.000000" for i in range(3)]


def test_as_fast_as_possible_replay_waits_for_a_slow_reader_instead_of_dropping_it(tmp_path: Path) -> None:
    count = 100_000  # about 10 MB of updates: more than socket buffers and far more than the client limit
    path = tmp_path / "big.csv"
    path.write_text("".join(
        f"2021-03-01 10:{i // 6000 % 60:02d}:{i // 100 % 60:02d}.{i % 100:06d},1.5000,100,{100 * (i + 1)},"
        f"1.4900,1.5100,{i + 1},C,11,01,0,1,\r\n" for i in range(count)
    ))
    with running(replay=path, speed=None, symbols=("XYZ",), client_buffer_bytes=256 << 10) as sim, \
            connect(sim.level1_port) as l1:
        l1.send("S,TIMESTAMPSOFF", "wXYZ")
        time.sleep(1.0)  # read nothing for a while
        assert not sim.stats.replay_finished  # the replay waited for its reader
        updates = 0
        while updates < count:
            if l1.read_line(timeout=10).startswith("Q,XYZ,"):
                updates += 1
        wait_for(lambda: sim.stats.replay_finished)
        assert sim.stats.clients_dropped == 0
