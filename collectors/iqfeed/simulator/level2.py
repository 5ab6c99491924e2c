"""Level 2 port (9200): order-book and market-maker depth watches.

Commands: ``WOR,<SYM>``/``ROR,<SYM>`` (orders: ``6`` summary, then ``3``/``4``/``5``),
``WPL,<SYM>``/``RPL,<SYM>`` (price levels: ``7`` summary with ``0`` market-maker
entries, then ``8``/``9``) — both need protocol 6.2 — and the older market-maker depth
``w<SYM>``/``r<SYM>`` (``Z`` summary, then ``2``), ``m<MMID>`` (``M,<MMID>,<name>``),
``T``, ``S,UNWATCH ALL``, ``S,TIMESTAMPSON``/``OFF`` and the shared system commands.
Unknown symbols get ``n,<SYM>``; after a DTN reconnect every watched book is resent as
``S,CLEAR DEPTH,<SYM>,B,``/``A,`` followed by a fresh summary.
"""

from __future__ import annotations

from collectors.iqfeed.simulator.book import MARKET_MAKERS
from collectors.iqfeed.simulator.session import ClientSession
from collectors.iqfeed.simulator.wire import heartbeat, sanitize

ORDERS = "orders"
LEVELS = "levels"
MARKET_MAKER = "mm"
_WATCH = {"WOR": ORDERS, "WPL": LEVELS}
_UNWATCH = {"ROR": ORDERS, "RPL": LEVELS}


class Level2Session(ClientSession):
    port = "level2"

    def __init__(self, hub) -> None:  # type: ignore[no-untyped-def]
        super().__init__(hub)
        self.watches: set[tuple[str, str]] = set()  # (symbol, view)
        self.timestamps = True

    def welcome(self) -> None:
        self.send("S,SERVER CONNECTED\r\n" if self.hub.link.connected else "S,SERVER DISCONNECTED\r\n")

    def other(self, text: str) -> bool:
        fields = text.split(",")
        verb = fields[0].strip().upper()
        if verb in _WATCH or verb in _UNWATCH:
            if self.protocol < "6.2":
                self.send(f"E,{verb} needs protocol 6.2 (S,SET PROTOCOL,6.2).,\r\n")
            elif len(fields) < 2 or not fields[1].strip() or any(f.strip() for f in fields[2:]):
                self.send("E,Invalid number of parameters.,\r\n")
            elif verb in _WATCH:
                self._watch(fields[1].strip(), _WATCH[verb])
            else:
                self._unwatch(fields[1].strip(), _UNWATCH[verb])
            return True
        head, rest = text[0], text[1:].strip()
        if head in "wr" and rest:
            (self._watch if head == "w" else self._unwatch)(rest, MARKET_MAKER)
            return True
        if head == "m" and rest:
            name = MARKET_MAKERS.get(rest)
            self.send(f"M,{rest},{name}\r\n" if name else f"E,Unknown market maker {sanitize(rest, 10)}.,\r\n")
            return True
        if text.strip() == "T":
            self.send(heartbeat(self.hub.text, self.hub.market_now()))
            return True
        return False

    def _watch(self, symbol: str, view: str) -> None:
        st = self.hub.states.get(symbol)
        if st is None:
            self.send(f"n,{sanitize(symbol, 40)}\r\n")
            return
        lines = self.hub.watch_l2(self, st, view)
        if self.hub.link.connected:
            self.send_lines(lines)

    def _unwatch(self, symbol: str, view: str) -> None:
        st = self.hub.states.get(symbol)
        if st is None:
            self.send(f"n,{sanitize(symbol, 40)}\r\n")
        else:
            self.hub.unwatch_l2(self, st, view)

    def system(self, name: str, args: list[str], text: str) -> bool:
        if name == "UNWATCH ALL":
            for symbol, view in list(self.watches):
                self.hub.unwatch_l2(self, self.hub.states[symbol], view)
        elif name in ("TIMESTAMPSON", "TIMESTAMPSOFF"):
            self.timestamps = name == "TIMESTAMPSON"
        else:
            return super().system(name, args, text)
        return True
