"""Admin port (9300): login, DTN connection, ``S,STATS`` and the simulator's fault controls.

IQConnect commands: ``S,REGISTER CLIENT APP,<product>,<version>`` ->
``S,REGISTER CLIENT APP COMPLETED,``; ``S,REMOVE CLIENT APP,...`` ->
``S,REMOVE CLIENT APP COMPLETED,``; ``S,SET LOGINID,<L>`` -> ``S,CURRENT LOGINID,<L>,``;
``S,SET PASSWORD,<P>`` -> ``S,CURRENT PASSWORD,********,`` (never echoed);
``S,SET SAVE LOGIN INFO,On|Off`` -> ``S,LOGIN INFO SAVED,``/``NOT SAVED,``;
``S,SET AUTOCONNECT,On|Off`` -> ``S,AUTOCONNECT ON,``/``OFF,``; ``S,CONNECT``;
``S,DISCONNECT``; ``S,CLIENTSTATS ON|OFF`` (a ``S,CLIENTSTATS,...`` line per client each
second); ``S,REQUEST STATS``; ``S,SET PROTOCOL`` (answered with a trailing comma).
``S,STATS`` comes every second whatever the client sends.

Simulator fault control (not IQFeed): ``S,SIM FAULT,<NAME>[,<arg>...]`` where NAME is
``DROP CONNECTIONS``, ``STALL,<seconds>``, ``SERVER DISCONNECT``, ``SERVER RECONNECT``,
``MALFORMED,<lines per second>``, ``REFUSE CONNECTIONS,<seconds>``,
``SILENCE SYMBOL,<SYM>[,<seconds>]`` or ``CLEAR``; each is the same-named method of
:class:`~collectors.iqfeed.simulator.faults.Faults`. Success:
``S,SIM FAULT OK,<NAME>,``; a bad command: ``E,SIM FAULT <reason>,``.
"""

from __future__ import annotations

from dataclasses import dataclass

from collectors.iqfeed.simulator.session import ClientSession
from collectors.iqfeed.simulator.wire import sanitize

# Fault name -> (Faults method, argument parsers, how many arguments are required).
FAULT_COMMANDS: dict[str, tuple[str, tuple[type, ...], int]] = {
    "DROP CONNECTIONS": ("drop_connections", (), 0),
    "STALL": ("stall", (float,), 1),
    "SERVER DISCONNECT": ("server_disconnect", (), 0),
    "SERVER RECONNECT": ("server_reconnect", (), 0),
    "MALFORMED": ("malformed", (float,), 1),
    "REFUSE CONNECTIONS": ("refuse_connections", (float,), 1),
    "SILENCE SYMBOL": ("silence_symbol", (str, float), 1),
    "CLEAR": ("clear", (), 0),
}


class FaultCommandError(ValueError):
    """A ``S,SIM FAULT`` command is malformed; the message says how to write it."""


def parse_fault(args: list[str]) -> tuple[str, tuple[object, ...]]:
    """``(Faults method name, arguments)`` of the fields after ``S,SIM FAULT``."""
    while args and not args[-1]:
        args = args[:-1]
    if not args:
        raise FaultCommandError(f"needs a fault name: one of {', '.join(FAULT_COMMANDS)}")
    name = args[0].upper()
    spec = FAULT_COMMANDS.get(name)
    if spec is None:
        raise FaultCommandError(f"unknown fault {sanitize(name, 30)}: one of {', '.join(FAULT_COMMANDS)}")
    method, parsers, required = spec
    values = args[1:]
    if not required <= len(values) <= len(parsers):
        raise FaultCommandError(f"{name} takes {required}..{len(parsers)} arguments")
    try:
        parsed = tuple(parse(v) for parse, v in zip(parsers, values))
    except ValueError:
        raise FaultCommandError(f"{name}: bad argument in {sanitize(','.join(values), 30)}") from None
    if any(isinstance(v, float) and v < 0 for v in parsed):
        raise FaultCommandError(f"{name}: arguments must not be negative")
    return method, parsed


@dataclass(frozen=True)
class StatsFields:
    """The values of one ``S,STATS`` line."""

    connected: bool
    max_symbols: int
    symbols: int
    clients: int
    seconds_since_update: int
    reconnections: int
    attempted_reconnections: int
    start_time: str
    market_time: str
    version: str
    login_id: str
    kb_received: float
    kb_per_s_received: float
    avg_kb_per_s_received: float
    kb_sent: float
    kb_per_s_sent: float
    avg_kb_per_s_sent: float


def stats_line(s: StatsFields) -> str:
    """``S,STATS`` in IQConnect's 21-field layout (22 with the trailing empty field).

    Not connected, IQConnect blanks the server address, times and receive averages and
    reports no symbol capacity, as in real captures.
    """
    if s.connected:
        fields = [
            "S", "STATS", "66.112.156.220", "60002", str(s.max_symbols), str(s.symbols), str(s.clients),
            str(s.seconds_since_update), str(s.reconnections), str(s.attempted_reconnections), s.start_time,
            s.market_time, "Connected", s.version, s.login_id, f"{s.kb_received:.2f}",
            f"{s.kb_per_s_received:.2f}", f"{s.avg_kb_per_s_received:.2f}", f"{s.kb_sent:.2f}",
            f"{s.kb_per_s_sent:.2f}", f"{s.avg_kb_per_s_sent:.2f}",
        ]
    else:
        fields = [
            "S", "STATS", "", "", "0", "0", str(s.clients), "0", str(s.reconnections),
            str(s.attempted_reconnections), "", "", "Not Connected", s.version, s.login_id, "0", "0", "",
            f"{s.kb_sent:.2f}", f"{s.kb_per_s_sent:.2f}", "",
        ]
    return ",".join(fields) + ",\r\n"


class AdminSession(ClientSession):
    port = "admin"
    system_comma = ","

    def __init__(self, hub) -> None:  # type: ignore[no-untyped-def]
        super().__init__(hub)
        self.client_stats = False

    def welcome(self) -> None:
        self.send(self.hub.stats_line(self))

    def system(self, name: str, args: list[str], text: str) -> bool:
        hub = self.hub
        first = args[0] if args else ""
        if name == "REGISTER CLIENT APP":
            hub.product = sanitize(first, 40)
            self.send("S,REGISTER CLIENT APP COMPLETED,\r\n")
        elif name == "REMOVE CLIENT APP":
            self.send("S,REMOVE CLIENT APP COMPLETED,\r\n")
        elif name == "SET LOGINID":
            hub.login_id = sanitize(first, 40)
            self.send(f"S,CURRENT LOGINID,{hub.login_id},\r\n")
        elif name == "SET PASSWORD":
            self.send("S,CURRENT PASSWORD,********,\r\n")
        elif name == "SET SAVE LOGIN INFO":
            self.send("S,LOGIN INFO SAVED,\r\n" if first.lower() == "on" else "S,LOGIN INFO NOT SAVED,\r\n")
        elif name == "SET AUTOCONNECT":
            self.send("S,AUTOCONNECT ON,\r\n" if first.lower() == "on" else "S,AUTOCONNECT OFF,\r\n")
        elif name in ("CLIENTSTATS ON", "CLIENTSTATS OFF"):
            self.client_stats = name == "CLIENTSTATS ON"
        elif name == "REQUEST STATS":
            self.send(hub.stats_line(self))
        elif name == "SIM FAULT":
            self._fault(args)
        else:
            return super().system(name, args, text)
        return True

    def _fault(self, args: list[str]) -> None:
        try:
            method, values = parse_fault(args)
        except FaultCommandError as exc:
            self.send(f"E,SIM FAULT {sanitize(str(exc), 120)},\r\n")
            return
        if method == "silence_symbol" and values[0] not in self.hub.states:
            self.send(f"E,SIM FAULT unknown symbol {sanitize(str(values[0]), 40)},\r\n")
            return
        self.send(f"S,SIM FAULT OK,{args[0].upper()},\r\n")
        getattr(self.hub.faults, method)(*values)
