"""One client connection: line framing, buffered writes and the commands every port shares.

Each port's session (Level 1, Level 2, admin, lookup) subclasses :class:`ClientSession`
and adds its own commands. Output is written straight to the transport; the stream
instead queues lines in ``out`` and the hub flushes each session once per batch, so a
burst of thousands of messages costs one ``write`` per client.

A client that does not read is dropped (with a log line) once more than
``client_buffer_bytes`` are queued for it, so it can never hold the others up for long.
While the simulator is stalled (fault), received commands wait and are answered when
the stall ends, as a frozen IQConnect would.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING

from collectors.iqfeed.simulator.wire import sanitize

if TYPE_CHECKING:
    from collectors.iqfeed.simulator.hub import Hub

log = logging.getLogger(__name__)

_MAX_LINE = 64 * 1024
_ids = itertools.count(1)


class ClientSession(asyncio.Protocol):
    """Base protocol for one client socket; subclasses implement :meth:`command`."""

    port = ""
    #: the admin port ends system replies with a comma, the others do not
    system_comma = ""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.client_id = next(_ids)
        self.client_name = ""
        self.protocol = hub.default_protocol
        self.transport: asyncio.Transport | None = None
        self.out: list[str] = []
        self.paused = False
        self.closed = False
        self.deferred: list[str] = []
        self.welcomed = False
        self.connected_us = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self._partial = b""

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        # Above half the client limit (at most 1 MiB) queued, pause_writing() marks the client
        # busy and the as-fast-as-possible replay waits for it; the limit itself, which drops
        # a client, is checked on each write.
        transport.set_write_buffer_limits(high=min(1 << 20, self.hub.config.client_buffer_bytes // 2))
        self.connected_us = self.hub.clock.now()
        self.hub.register(self)
        if not self.hub.faults.stalled():
            self.welcomed = True
            self.welcome()

    def data_received(self, data: bytes) -> None:
        self.bytes_received += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        if len(self._partial) > _MAX_LINE:
            self._partial = b""
            self.send(f"E,Command longer than {_MAX_LINE} bytes.,\r\n")
        for raw in lines:
            text = raw.decode("latin-1").rstrip("\r")
            if not text.strip():
                continue
            if self.hub.faults.stalled():
                self.deferred.append(text)
            else:
                self.command(text)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.hub.unregister(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    # -- output ---------------------------------------------------------------------------

    def send(self, text: str, lines: int = 1) -> None:
        """Write ``text`` (``lines`` CRLF-terminated messages) now."""
        if self.closed or self.transport is None:
            return
        data = text.encode("latin-1")
        self.transport.write(data)
        self.bytes_sent += len(data)
        self.hub.stats.sent(self.port, lines, len(data))
        buffered = self.transport.get_write_buffer_size()
        if buffered > self.hub.config.client_buffer_bytes:
            log.warning(
                "dropping slow client: %s bytes queued",
                buffered,
                extra={"component": "iqfeed-simulator", "port": self.port, "client_id": self.client_id,
                       "client_name": self.client_name, "buffered_bytes": buffered},
            )
            self.hub.stats.clients_dropped += 1
            self.abort()

    def send_lines(self, lines: list[str]) -> None:
        if lines:
            self.send("".join(lines), len(lines))

    def flush(self) -> None:
        """Write the lines the stream queued in ``out``."""
        out = self.out
        if out:
            text = "".join(out)
            lines = len(out)
            out.clear()  # the same list stays: the hub's fan-out routes hold its append
            self.send(text, lines)

    def abort(self) -> None:
        """Close the socket now, discarding queued output."""
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    # -- commands -------------------------------------------------------------------------

    def resume(self) -> None:
        """After a stall: greet if the stall swallowed the greeting, then run waiting commands."""
        if not self.welcomed:
            self.welcomed = True
            self.welcome()
        waiting, self.deferred = self.deferred, []
        for text in waiting:
            if not self.closed:
                self.command(text)

    def welcome(self) -> None:
        """Messages a new connection gets before it asks for anything."""

    def command(self, text: str) -> None:
        """Handle one command line; subclasses extend :meth:`system` and :meth:`other`."""
        if text.startswith("S,"):
            fields = text.split(",")
            name = fields[1].strip().upper() if len(fields) > 1 else ""
            if not self.system(name, [f.strip() for f in fields[2:]], text):
                self.unknown(text)
        elif not self.other(text):
            self.unknown(text)

    def system(self, name: str, args: list[str], text: str) -> bool:
        """Handle ``S,<name>,<args>``; False when this port does not know the command."""
        if name == "SET PROTOCOL":
            version = args[0] if args else ""
            if version in self.hub.config.protocol_versions:
                self.protocol = version
                self.send(f"S,CURRENT PROTOCOL,{version}{self.system_comma}\r\n")
            else:
                self.send(f"E,{sanitize(version, 20)} is not a valid protocol.,\r\n")
            return True
        if name == "SET CLIENT NAME":
            self.client_name = sanitize(",".join(args), 40)
            return True
        if name == "CONNECT":
            self.hub.link.user_connect()
            return True
        if name == "DISCONNECT":
            self.hub.link.user_disconnect()
            return True
        return False

    def other(self, text: str) -> bool:
        """Handle a non-system command; False when this port does not know it."""
        return False

    def unknown(self, text: str) -> None:
        self.send(f"E,Unknown command: {sanitize(text)},\r\n")
