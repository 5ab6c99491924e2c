"""SimulatorConfig validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.iqfeed.simulator import SimulatorConfig, SimulatorConfigError
from collectors.iqfeed.simulator.config import DEFAULT_SYMBOLS, generated_symbols, valid_symbol

pytestmark = pytest.mark.timeout(30)


def test_defaults_are_iqconnects_ports_and_a_default_universe() -> None:
    cfg = SimulatorConfig()
    assert (cfg.level1_port, cfg.level2_port, cfg.admin_port, cfg.lookup_port) == (5009, 9200, 9300, 9100)
    assert cfg.universe == DEFAULT_SYMBOLS
    assert cfg.protocol_versions == ("6.1", "6.2")


def test_symbol_count_generates_distinct_valid_names() -> None:
    names = generated_symbols(2000)
    assert len(set(names)) == 2000
    assert all(valid_symbol(n) and len(n) == 4 for n in names)
    assert SimulatorConfig(symbol_count=3).universe == names[:3]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"level1_port": 70000}, "level1_port"),
        ({"symbols": ["AAPL", "BAD,SYM"]}, "symbols"),
        ({"symbols": ["AAPL", "AAPL"]}, "each symbol once"),
        ({"symbols": ["AAPL"], "symbol_count": 5}, "not both"),
        ({"rate": -1}, "rate"),
        ({"speed": 5000}, "speed"),
        ({"replay": Path("/no/such/file.csv")}, "replay"),
        ({"replay_symbol": "ZZZZ"}, "replay_symbol"),
        ({"protocol_versions": ("6.3",)}, "protocol_versions"),
        ({"watch_limit": 0}, "watch_limit"),
        ({"client_buffer_bytes": 10}, "client_buffer_bytes"),
        ({"trade_log": Path("/no/such/directory/trades.csv")}, "trade_log"),
        ({"trade_log": Path("/tmp")}, "trade_log"),
    ],
)
def test_bad_settings_are_rejected_naming_the_setting(overrides: dict, named: str) -> None:
    with pytest.raises(SimulatorConfigError, match=named):
        SimulatorConfig(**overrides)


def test_speed_none_or_zero_means_as_fast_as_possible() -> None:
    assert SimulatorConfig(speed=None).speed is None
    assert SimulatorConfig(speed=0).speed == 0


def test_history_is_shared_out_with_a_floor_per_symbol() -> None:
    assert SimulatorConfig(symbols=["A", "B"], history_ticks=100_000).history_per_symbol == 50_000
    assert SimulatorConfig(symbol_count=1000, history_ticks=500_000).history_per_symbol == 500
    assert SimulatorConfig(symbol_count=10_000, history_ticks=100_000).history_per_symbol == 100
