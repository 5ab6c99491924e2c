from collectors.events import Depth, Quote, Trade
from collectors.live_state import LiveState
from monitoring.host import HostSample, HostSampler, rss_slope_bytes_per_hour


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
