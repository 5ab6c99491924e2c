from events import Depth, Quote, Trade
from runtime.live_state import LiveState
import pytest

from monitoring.host import HostSample, HostSampler, rss_growth_after_warmup, rss_slope_bytes_per_hour


def test_live_state_keeps_latest_trade_and_quote_and_counts_per_symbol():
    state = LiveState()
    state.update([
        Trade(symbol="AAPL", price=1.0, size=10, ts_ns=1, recv_ns=5),
        Quote(symbol="AAPL", bid=0.9, bid_size=1, ask=1.1, ask_size=2, ts_ns=2, recv_ns=6),
        Trade(symbol="AAPL", price=2.0, size=20, ts_ns=3, recv_ns=7),
        Depth(symbol="MSFT", action="add", side="bid", price=5.0, size=1, recv_ns=8),
    ])
    snap = state.snapshot()
    assert snap["AAPL"].last_price == 2.0 and snap["AAPL"].trades == 2 and snap["AAPL"].quotes == 1
    assert snap["AAPL"].bid == 0.9 and snap["AAPL"].last_event_recv_ns == 7
    assert snap["MSFT"].depth_updates == 1
    state.forget("MSFT")
    assert "MSFT" not in state.snapshot()


def test_host_sampler_reads_this_process_and_disk(tmp_path):
    sampler = HostSampler(tmp_path)
    sample = sampler.sample()
    assert sample.rss_bytes > 10_000_000 and 0 <= sample.disk_free_pct <= 100 and sample.threads >= 1
    assert sampler.history() == [sample]


def test_rss_slope_detects_steady_growth_and_ignores_flat_memory():
    hour = 3_600_000_000_000
    growing = [HostSample(i * hour // 10, 0, 0, 50, 1, 100_000_000 + i * 10_000_000, 0, 1) for i in range(11)]
    flat = [HostSample(i * hour // 10, 0, 0, 50, 1, 100_000_000, 0, 1) for i in range(11)]
    assert abs(rss_slope_bytes_per_hour(growing) - 100_000_000) < 1
    assert rss_slope_bytes_per_hour(flat) == 0
    assert rss_slope_bytes_per_hour(growing[:1]) == 0


def _rss(ts_s: float, mib: float) -> HostSample:
    return HostSample(int(ts_s * 1e9), 0, 0, 50, 1, int(mib * 2**20), 0, 1)


def test_rss_growth_waits_for_the_warm_up_and_a_full_window():
    """The first minutes (caches filling) are left out; nothing is judged before a whole window after them."""
    warm_up = [_rss(t, 100 + t) for t in range(0, 900, 5)]  # 1 MiB/s while warming up: 3600 MiB/h
    steady = [_rss(t, 1000) for t in range(900, 2700, 5)]
    judge = {"started_ns": 0, "warmup_s": 900, "window_s": 1800}
    assert rss_growth_after_warmup(warm_up, now_ns=899 * 10**9, **judge) is None
    assert rss_growth_after_warmup(warm_up + steady[:100], now_ns=1400 * 10**9, **judge) is None
    assert rss_growth_after_warmup(warm_up + steady, now_ns=2700 * 10**9, **judge) == 0


def test_rss_growth_after_the_warm_up_is_the_slope_of_the_last_window():
    leaking = [_rss(t, 500 + t / 60) for t in range(0, 4000, 5)]  # 1 MiB/min = 60 MiB/h
    slope = rss_growth_after_warmup(leaking, started_ns=0, now_ns=4000 * 10**9, warmup_s=900, window_s=1800)
    assert slope == pytest.approx(60 * 2**20, rel=1e-6)
