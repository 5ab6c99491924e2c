"""Lookup port (9100) connection: history requests answered by :class:`LookupService`.

Besides the history commands it accepts ``S,SET PROTOCOL`` (which decides the ``LH``
row prefix) and ``S,SET CLIENT NAME``; every other line, ``S,CONNECT`` included (the
lookup port has no DTN connection to control), gets ``E,!SYNTAX_ERROR!,``.
"""

from __future__ import annotations

from collectors.iqfeed.simulator.lookup import SYNTAX_ERROR
from collectors.iqfeed.simulator.session import ClientSession


class LookupSession(ClientSession):
    port = "lookup"

    def system(self, name: str, args: list[str], text: str) -> bool:
        if name in ("SET PROTOCOL", "SET CLIENT NAME"):
            return super().system(name, args, text)
        return False

    def other(self, text: str) -> bool:
        self.send_lines(list(self.hub.lookup.respond(text, self.protocol)))
        return True

    def unknown(self, text: str) -> None:
        self.send(SYNTAX_ERROR)
