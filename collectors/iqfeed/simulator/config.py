"""The simulator's one typed configuration object, validated when it is built.

A bad value raises :class:`SimulatorConfigError` naming the field and what it accepts,
so a test or the CLI fails at construction instead of with a confusing socket error
later. Ports default to IQConnect's real ones; tests pass ``0`` for ephemeral ports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

SUPPORTED_PROTOCOLS = ("6.1", "6.2")
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "SPY", "QQQ", "TSLA", "AMZN", "NVDA", "META")
MAX_SPEED = 1000.0

# IQFeed symbols are plain printable text; commas, spaces and line breaks would let a
# symbol inject fields or commands, so the simulator never offers such a symbol.
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9.@#/\-_^+=$!:]{1,40}$")


class SimulatorConfigError(ValueError):
    """A simulator setting is invalid; the message names the setting and what it accepts."""


def valid_symbol(symbol: str) -> bool:
    """True when ``symbol`` is safe to appear as one field of an IQFeed line."""
    return bool(_SYMBOL_RE.match(symbol))


def generated_symbols(count: int) -> tuple[str, ...]:
    """``count`` distinct ticker-like names (``BAAA``, ``BAAB``, ...) for load tests."""
    names = []
    for i in range(count):
        n = i + 26**3  # four letters, first letter from B on, so names never look like ``AAAA``
        letters = []
        while n:
            n, r = divmod(n, 26)
            letters.append(chr(65 + r))
        names.append("".join(reversed(letters)))
    return tuple(names)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything an :class:`IQFeedSimulator` needs.

    Fields:
        host: interface to bind.
        level1_port, level2_port, admin_port, lookup_port: ports; 0 binds an ephemeral
            port (read the real one from the simulator after ``start()``).
        symbols: the simulator's universe; any other symbol is unknown (``n,<SYM>`` on
            Level 1 and 2, ``E,Invalid symbol.`` on lookup).
        symbol_count: instead of ``symbols``, generate this many names (load tests).
        rate: target synthetic Level 1 market events per second over all symbols; each
            event is one ``Q`` line per client watching that symbol. 0 = no stream.
        seed: seeds every random choice, so a run is reproducible.
        replay: an IQFeed tick-history file (lookup format) to replay instead of the
            synthetic market; its ticks belong to ``replay_symbol``.
        replay_symbol: the symbol the replay file is for (default: the first symbol).
        speed: replay speed factor (1..1000); ``None`` or 0 = as fast as clients read.
        shift_to_today: move replayed dates so that the first replayed day is today.
        watch_limit: symbols IQConnect may watch at once (``S,SYMBOL LIMIT REACHED``).
        watch_limit_per_connection: False (IQConnect's own rule): ``watch_limit`` counts
            the distinct symbols of all Level 1 connections together. True: every Level 1
            connection stands for an IQConnect of its own, with ``watch_limit`` distinct
            symbols of its own, all of them sharing the one market (a collector fleet,
            each collector with its own IQConnect, against one simulator).
        login_ok: False simulates a wrong login: the DTN status never becomes Connected.
        login_id: the login shown in ``S,STATS`` until a client sets one.
        connect_delay: seconds of ``Not Connected`` before the first DTN connection.
        protocol_versions: versions ``S,SET PROTOCOL`` accepts; the lowest is a new
            connection's protocol until the client sets one.
        lookup_rate_limit: history requests per second (token bucket of that size).
        history_ticks: ticks kept in memory over all symbols for lookups (at least 100
            per symbol, and every tick of a replay file).
        client_buffer_bytes: bytes queued for one client before it is dropped as slow.
        book_depth: price levels per side of each simulated order book.
        trade_log: append every trade the market makes to this file (the simulator's own
            record, see :mod:`collectors.iqfeed.simulator.trade_log`); None = no log.
    """

    host: str = "127.0.0.1"
    level1_port: int = 5009
    level2_port: int = 9200
    admin_port: int = 9300
    lookup_port: int = 9100
    symbols: Sequence[str] = ()
    symbol_count: int | None = None
    rate: float = 1000.0
    seed: int = 7
    replay: Path | None = None
    replay_symbol: str | None = None
    speed: float | None = 1.0
    shift_to_today: bool = False
    watch_limit: int = 500
    watch_limit_per_connection: bool = False
    login_ok: bool = True
    login_id: str = ""
    connect_delay: float = 0.0
    protocol_versions: Sequence[str] = SUPPORTED_PROTOCOLS
    lookup_rate_limit: float = 50.0
    history_ticks: int = 500_000
    client_buffer_bytes: int = 32 * 1024 * 1024
    book_depth: int = 10
    trade_log: Path | None = None
    universe: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        errors: list[str] = []
        for name in ("level1_port", "level2_port", "admin_port", "lookup_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                errors.append(f"{name}={port}: must be 0 (ephemeral) or 1..65535")
        if self.symbols and self.symbol_count is not None:
            errors.append("symbols and symbol_count: give one of them, not both")
        if self.symbol_count is not None and not 1 <= self.symbol_count <= 100_000:
            errors.append(f"symbol_count={self.symbol_count}: must be 1..100000")
        universe = (
            generated_symbols(self.symbol_count)
            if self.symbol_count is not None
            else tuple(self.symbols) or DEFAULT_SYMBOLS
        )
        bad = [s for s in universe if not valid_symbol(s)]
        if bad:
            errors.append(f"symbols {bad[:5]}: letters, digits and . @ # / - _ ^ + = $ ! : only")
        if len(set(universe)) != len(universe):
            errors.append("symbols: each symbol once")
        if not 0 <= self.rate <= 10_000_000:
            errors.append(f"rate={self.rate}: must be 0..10000000 messages per second")
        if self.speed is not None and self.speed != 0 and not 1 <= self.speed <= MAX_SPEED:
            errors.append(f"speed={self.speed}: must be 1..{MAX_SPEED:g}, or None/0 for as fast as possible")
        if self.replay is not None and not Path(self.replay).is_file():
            errors.append(f"replay={self.replay}: no such file")
        replay_symbol = self.replay_symbol or universe[0]
        if self.replay_symbol is not None and self.replay_symbol not in universe:
            errors.append(f"replay_symbol={self.replay_symbol}: must be one of the symbols")
        if self.watch_limit < 1:
            errors.append(f"watch_limit={self.watch_limit}: must be at least 1")
        if self.connect_delay < 0:
            errors.append(f"connect_delay={self.connect_delay}: must be >= 0 seconds")
        unknown = [v for v in self.protocol_versions if v not in SUPPORTED_PROTOCOLS]
        if unknown or not self.protocol_versions:
            errors.append(f"protocol_versions={tuple(self.protocol_versions)}: a non-empty subset of {SUPPORTED_PROTOCOLS}")
        if self.lookup_rate_limit <= 0:
            errors.append(f"lookup_rate_limit={self.lookup_rate_limit}: must be > 0")
        if self.history_ticks < 0:
            errors.append(f"history_ticks={self.history_ticks}: must be >= 0")
        if self.client_buffer_bytes < 64 * 1024:
            errors.append(f"client_buffer_bytes={self.client_buffer_bytes}: must be at least 65536")
        if not 1 <= self.book_depth <= 100:
            errors.append(f"book_depth={self.book_depth}: must be 1..100")
        if self.trade_log is not None and (Path(self.trade_log).is_dir() or not Path(self.trade_log).parent.is_dir()):
            errors.append(f"trade_log={self.trade_log}: must be a file in an existing directory")
        if errors:
            raise SimulatorConfigError("invalid simulator config: " + "; ".join(errors))
        object.__setattr__(self, "universe", universe)
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "protocol_versions", tuple(sorted(self.protocol_versions)))
        object.__setattr__(self, "replay_symbol", replay_symbol if self.replay is not None else self.replay_symbol)

    @property
    def history_per_symbol(self) -> int:
        """Ticks kept per symbol: the total shared out, at least 100 each."""
        return max(100, self.history_ticks // len(self.universe))
