from dashboard.charts import bars_1m, host_history, latency_over_time, price_volume
from monitoring.host import HostSample

NS = 1_700_000_000_000_000_000


def test_price_volume_has_a_price_line_and_size_bars_in_utc():
    figure = price_volume("AAPL", [(NS, 1.5, 100), (NS + 10**9, 1.6, 200)])
    line, bars = figure.data
    assert list(line.y) == [1.5, 1.6] and list(bars.y) == [100, 200]
    assert line.x[0].isoformat() == "2023-11-14T22:13:20+00:00"


def test_candles_latency_and_host_figures_carry_their_values():
    candle = bars_1m("AAPL", [(NS, 1.0, 2.0, 0.5, 1.5, 10)]).data[0]
    assert (candle.open[0], candle.high[0], candle.low[0], candle.close[0]) == (1.0, 2.0, 0.5, 1.5)
    latency = latency_over_time("live", [(NS, 3.0, 40.0, 55.0), (NS + 60 * 10**9, 2.0, 9.0, 12.0)], 100.0)
    assert [t.name for t in latency.data] == ["p50", "p99", "max"]
    assert list(latency.data[1].y) == [40.0, 9.0]
    assert latency.layout.shapes[0].y0 == 100.0  # the objective line
    host = host_history([HostSample(NS, 10.0, 20.0, 70.0, 1, 2**30, 3, 4)])
    assert [t.name for t in host.data] == ["CPU %", "memory %", "disk free %", "RSS MiB"]
    assert host.data[3].y[0] == 1024
