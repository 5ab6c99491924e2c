"""Per-symbol silence follows the NYSE calendar at the feed's own time, over real sockets.

The simulator replays a symbol that trades every 100 ms while a second watched symbol
stays silent, at a replayed time of day chosen per test: the feed's heartbeats carry that
time, so the client judges the session the data is from, not the session of the machine
running the test.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration._backfill_support import Print, write_replay
from tests.integration._feed_support import Recorder, running_client, running_simulator, settings_for

pytestmark = pytest.mark.timeout(60)

TRADING, QUIET = "AAA", "BBB"


def _local_us(moment: datetime) -> int:
    """Eastern wall clock as microseconds since 1970-01-01 00:00 (how replay files are written)."""
    return int((moment - datetime(1970, 1, 1)) / timedelta(microseconds=1))


def _replay_file(path: Path, at: datetime) -> Path:
    prints = [Print(i * 100_000, "10.00", 100, ("9.99", "10.01", str(i + 1), "C", "11", "", "0", "1"))
              for i in range(120)]
    write_replay(path, prints, _local_us(at))
    return path


@pytest.mark.parametrize(
    ("replayed_at", "window_expected"),
    [
        (datetime(2021, 3, 1, 10, 30), True),  # regular session: the quiet symbol is an outage
        (datetime(2021, 3, 1, 7, 0), False),  # pre-market: quiet symbols are normal
        (datetime(2021, 3, 1, 21, 0), False),  # closed
    ],
    ids=["regular", "pre_market", "closed"],
)
def test_a_quiet_symbol_is_an_outage_only_in_the_regular_session_at_the_feeds_time(
        tmp_path: Path, replayed_at: datetime, window_expected: bool) -> None:
    replay = _replay_file(tmp_path / "replay.csv", replayed_at)
    with running_simulator(symbols=[TRADING, QUIET], rate=0.0, replay=replay, replay_symbol=TRADING) as sim:
        settings = settings_for(sim, symbol_silence_s=1.0, symbol_silence_extended_s=0, symbol_silence_closed_s=0)
        recorder = Recorder()
        with running_client(settings, recorder, symbols=[TRADING, QUIET]) as client:
            assert not recorder.wait_market_data([TRADING], 0), "the replay did not start"
            time.sleep(4.0)  # four times the threshold, the traded symbol printing all along
            windows = [w for w in client.outages if w.symbol == QUIET]
    assert bool(windows) is window_expected, windows
    if window_expected:
        assert windows[0].cause == "symbol_silent"
