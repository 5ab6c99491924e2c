"""A protocol-faithful IQFeed (IQConnect) server for tests, the demo and benchmarks.

IQConnect.exe cannot run here, so every test of our IQFeed client runs against this
server, and any IQFeed client written by someone else must work against it unchanged.

Usage::

    from collectors.iqfeed.simulator import IQFeedSimulator, SimulatorConfig

    cfg = SimulatorConfig(level1_port=0, level2_port=0, admin_port=0, lookup_port=0,
                          symbols=["AAPL", "MSFT"], rate=1000.0, seed=7)
    with IQFeedSimulator(cfg) as sim:
        sim.level1_port, sim.level2_port, sim.admin_port, sim.lookup_port
        sim.faults.server_disconnect()
        sim.stats.messages_sent["level1"]

Ports: Level 1 (trades, quotes, fundamentals, heartbeats), Level 2 (order book and
market-maker depth), admin (login, DTN status, ``S,STATS`` every second) and lookup
(tick and bar history). See the modules ``level1``, ``level2``, ``admin`` and ``lookup``
for the exact commands and replies.

Market: a seeded synthetic random walk (``rate`` events per second over any number of
symbols) or the replay of an IQFeed tick-history file (``replay``, ``speed``,
``shift_to_today``). A replay starts when a client first watches the replay symbol, so
a test sees it from its first tick. Times are US/Eastern wall clock throughout.

Watch limit: ``watch_limit`` distinct symbols over all Level 1 connections, as one
IQConnect has; with ``watch_limit_per_connection`` each connection has its own (a fleet of
collectors, each with its own IQConnect, against one market). ``trade_log`` records every
trade the market makes to a CSV file (:mod:`~collectors.iqfeed.simulator.trade_log`,
``read_trade_log``), so a test can compare what a pipeline stored with what was made.

Fault control from a socket (admin port), the same faults as ``sim.faults``::

    S,SIM FAULT,DROP CONNECTIONS
    S,SIM FAULT,STALL,<seconds>
    S,SIM FAULT,SERVER DISCONNECT
    S,SIM FAULT,SERVER RECONNECT
    S,SIM FAULT,MALFORMED,<lines per second>      (0 stops)
    S,SIM FAULT,REFUSE CONNECTIONS,<seconds>
    S,SIM FAULT,SILENCE SYMBOL,<SYM>[,<seconds>]   (no seconds: until CLEAR)
    S,SIM FAULT,CLEAR

answered ``S,SIM FAULT OK,<NAME>,`` or ``E,SIM FAULT <reason>,``. What each fault does is
described in :mod:`collectors.iqfeed.simulator.faults`.
"""

from collectors.iqfeed.simulator.config import SimulatorConfig, SimulatorConfigError
from collectors.iqfeed.simulator.faults import Faults, SimulatorNotRunning
from collectors.iqfeed.simulator.replay import ReplayFormatError
from collectors.iqfeed.simulator.server import IQFeedSimulator, SimulatorStartError
from collectors.iqfeed.simulator.stats import SimulatorStats

__all__ = [
    "Faults",
    "IQFeedSimulator",
    "ReplayFormatError",
    "SimulatorConfig",
    "SimulatorConfigError",
    "SimulatorNotRunning",
    "SimulatorStartError",
    "SimulatorStats",
]
