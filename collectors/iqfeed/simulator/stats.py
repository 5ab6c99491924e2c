"""Simulator counters: updated on the simulator's loop thread, read as snapshots anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field

PORTS = ("level1", "level2", "admin", "lookup")


@dataclass(frozen=True)
class SimulatorStats:
    """A point-in-time copy of the counters (``IQFeedSimulator.stats``).

    ``messages_sent``/``bytes_sent``/``clients_connected``/``connections_accepted`` are
    per port (``level1``, ``level2``, ``admin``, ``lookup``); ``market_events`` counts
    Level 1 market events generated (each becomes one ``Q`` per watching client);
    ``trades_logged``/``trade_log_failures`` count trades written to the trade log and
    trades a failed write lost from it.
    """

    messages_sent: dict[str, int]
    bytes_sent: dict[str, int]
    clients_connected: dict[str, int]
    connections_accepted: dict[str, int]
    clients_dropped: int
    market_events: int
    malformed_sent: int
    lookup_requests: int
    lookup_rate_limited: int
    replay_ticks_sent: int
    replay_ticks_total: int
    replay_finished: bool
    dtn_connected: bool
    watched_symbols: int
    trades_logged: int
    trade_log_failures: int


@dataclass
class Counters:
    """The live counters behind :class:`SimulatorStats`."""

    messages: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PORTS, 0))
    bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PORTS, 0))
    clients: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PORTS, 0))
    accepted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PORTS, 0))
    clients_dropped: int = 0
    market_events: int = 0
    malformed_sent: int = 0
    replay_ticks_sent: int = 0
    replay_ticks_total: int = 0
    replay_finished: bool = False

    def sent(self, port: str, lines: int, nbytes: int) -> None:
        self.messages[port] += lines
        self.bytes[port] += nbytes
