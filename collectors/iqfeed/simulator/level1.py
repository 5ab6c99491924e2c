"""Level 1 port (5009): watches, dynamic field sets, summaries and system messages.

Commands: ``w<SYM>`` (trades and quotes), ``t<SYM>`` (trades only), ``r<SYM>``,
``f<SYM>`` (refresh: ``F`` and ``P`` now, also for a symbol not watched), ``T`` (one
timestamp), ``S,UNWATCH ALL``, ``S,REQUEST WATCHES`` (``S,WATCHES,<sym>,...``),
``S,SELECT UPDATE FIELDS,<names>``, ``S,REQUEST CURRENT UPDATE FIELDNAMES``,
``S,REQUEST ALL UPDATE FIELDNAMES``, ``S,REQUEST FUNDAMENTAL FIELDNAMES``,
``S,REQUEST STATS``, ``S,TIMESTAMPSON``/``OFF``, ``S,NEWSON``/``OFF`` (accepted; the
simulator has no news), plus the shared ``S,SET PROTOCOL``, ``S,SET CLIENT NAME``,
``S,CONNECT`` and ``S,DISCONNECT``. Anything else gets an ``E,`` line.

Unknown-symbol rule: a symbol is known when it is one of the simulator's configured
(or generated) symbols; any other symbol gets ``n,<SYM>``.
"""

from __future__ import annotations

from collectors.iqfeed.simulator.fields import (
    ALL_UPDATE_FIELDS,
    DEFAULT_UPDATE_FIELDS,
    FUNDAMENTAL_FIELDS,
    UnknownFieldError,
    select_fields,
)
from collectors.iqfeed.simulator.market import SymbolState
from collectors.iqfeed.simulator.session import ClientSession
from collectors.iqfeed.simulator.wire import heartbeat, sanitize

IQFEED_VERSION = "6.2.0.25"


class Level1Session(ClientSession):
    port = "level1"

    def __init__(self, hub) -> None:  # type: ignore[no-untyped-def]
        super().__init__(hub)
        self.watches: dict[str, bool] = {}  # symbol -> trades only
        self.formatter = hub.formatters.get(DEFAULT_UPDATE_FIELDS)
        self.timestamps = True

    def welcome(self) -> None:
        hub = self.hub
        state = "SERVER CONNECTED" if hub.link.connected else "SERVER DISCONNECTED"
        self.send_lines([
            f"S,KEY,{hub.auth_key}\r\n",
            f"S,{state}\r\n",
            "S,IP,127.0.0.1 60002,127.0.0.1 60003,127.0.0.1 60004\r\n",
            f"S,CUST,real_time,127.0.0.1,60002,{hub.auth_key},{IQFEED_VERSION},0,"
            f"AMEX NASDAQ NYSE OPRA,,{hub.config.watch_limit},QT_API,,\r\n",
        ])

    def snapshot(self, st: SymbolState) -> list[str]:
        """``F`` then ``P`` for a symbol, as IQConnect sends on watch and refresh."""
        return [st.fundamentals(), self.formatter.summary(st)]

    def other(self, text: str) -> bool:
        head, symbol = text[0], text[1:].strip()
        if head in "wtrf" and symbol:
            st = self.hub.states.get(symbol)
            if st is None:
                self.send(f"n,{sanitize(symbol, 40)}\r\n")
            elif head == "r":
                self.hub.unwatch_l1(self, st)
            elif head == "f":
                self.send_lines(self.snapshot(st))
            elif self.hub.watch_l1(self, st, trades_only=head == "t"):
                if self.hub.link.connected:
                    self.send_lines(self.snapshot(st))
            else:
                self.send(f"S,SYMBOL LIMIT REACHED,{symbol}\r\n")
            return True
        if text.strip() == "T":
            self.send(heartbeat(self.hub.text, self.hub.market_now()))
            return True
        return False

    def system(self, name: str, args: list[str], text: str) -> bool:
        if name == "SELECT UPDATE FIELDS":
            try:
                fields = select_fields(text.split(",")[2:])
            except UnknownFieldError as exc:
                self.send(f"E,{sanitize(str(exc))},\r\n")
                return True
            self.formatter = self.hub.formatters.get(fields)
            self.hub.formatter_changed(self)
            self.send(f"S,CURRENT UPDATE FIELDNAMES,{','.join(fields)}\r\n")
        elif name == "REQUEST CURRENT UPDATE FIELDNAMES":
            self.send(f"S,CURRENT UPDATE FIELDNAMES,{','.join(self.formatter.fields)}\r\n")
        elif name == "REQUEST ALL UPDATE FIELDNAMES":
            self.send(f"S,UPDATE FIELDNAMES,{','.join(ALL_UPDATE_FIELDS)}\r\n")
        elif name == "REQUEST FUNDAMENTAL FIELDNAMES":
            self.send(f"S,FUNDAMENTAL FIELDNAMES,{','.join(FUNDAMENTAL_FIELDS)}\r\n")
        elif name == "UNWATCH ALL":
            for symbol in list(self.watches):
                self.hub.unwatch_l1(self, self.hub.states[symbol])
        elif name == "REQUEST WATCHES":
            self.send(",".join(["S,WATCHES", *self.watches]) + "\r\n")
        elif name == "REQUEST STATS":
            self.send(self.hub.stats_line(self))
        elif name in ("TIMESTAMPSON", "TIMESTAMPSOFF"):
            self.timestamps = name == "TIMESTAMPSON"
        elif name not in ("NEWSON", "NEWSOFF"):
            return super().system(name, args, text)
        return True
