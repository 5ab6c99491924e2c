"""The simulator process side: one asyncio loop in a background thread, four listening ports.

:class:`IQFeedSimulator` is the public handle: ``start()`` returns once every port is
bound and listening (ephemeral ports are read back into ``level1_port`` etc.), ``stop()``
closes everything and joins the thread, and both are safe to call twice.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from types import TracebackType

from collectors.iqfeed.simulator.admin import AdminSession
from collectors.iqfeed.simulator.config import SimulatorConfig
from collectors.iqfeed.simulator.hub import Hub
from collectors.iqfeed.simulator.level1 import Level1Session
from collectors.iqfeed.simulator.level2 import Level2Session
from collectors.iqfeed.simulator.lookup_session import LookupSession
from collectors.iqfeed.simulator.replay import load_ticks, shift_to_day
from collectors.iqfeed.simulator.session import ClientSession
from collectors.iqfeed.simulator.stats import SimulatorStats
from collectors.iqfeed.simulator.wire import EasternClock, day_of

log = logging.getLogger(__name__)
_EXTRA = {"component": "iqfeed-simulator"}
_START_TIMEOUT_S = 30.0
_REOPEN_RETRY_S = 0.2

_SESSION_TYPES: dict[str, type[ClientSession]] = {
    "level1": Level1Session,
    "level2": Level2Session,
    "admin": AdminSession,
    "lookup": LookupSession,
}


class SimulatorStartError(RuntimeError):
    """The simulator could not start (most often: a port is already in use)."""


class IQFeedSimulator:
    """A protocol-faithful stand-in for IQConnect serving Level 1, Level 2, admin and lookup."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.level1_port = config.level1_port
        self.level2_port = config.level2_port
        self.admin_port = config.admin_port
        self.lookup_port = config.lookup_port
        self._hub: Hub | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._servers: dict[str, asyncio.AbstractServer] = {}
        self._stopped = threading.Event()
        self.faults = self._make_hub().faults

    def _make_hub(self) -> Hub:
        ticks = None
        if self.config.replay is not None:
            ticks = load_ticks(self.config.replay)
            if self.config.shift_to_today:
                ticks = shift_to_day(ticks, day_of(EasternClock().now()))
        self._hub = Hub(self.config, ticks)
        self._hub.faults.listeners = self
        return self._hub

    @property
    def hub(self) -> Hub:
        assert self._hub is not None
        return self._hub

    @property
    def stats(self) -> SimulatorStats:
        """Counters: messages and bytes sent per port, clients, drops, replay progress."""
        return self.hub.snapshot()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _port(self, name: str) -> int:
        return int(getattr(self, f"{name}_port"))

    # -- start / stop --------------------------------------------------------------------

    def start(self) -> IQFeedSimulator:
        """Bind every port and serve in a background thread; returns once listening."""
        if self.running:
            return self
        if self._stopped.is_set():  # a stopped simulator starts afresh
            self._stopped.clear()
            self.faults = self._make_hub().faults
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="iqfeed-simulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT_S):
            raise SimulatorStartError("simulator did not start within 30 s")
        if failure:
            self._thread.join()
            self._thread = None
            raise SimulatorStartError(f"simulator could not start: {failure[0]}") from failure[0]
        log.info(
            "IQFeed simulator listening on %s: level1=%d level2=%d admin=%d lookup=%d",
            self.config.host, self.level1_port, self.level2_port, self.admin_port, self.lookup_port,
            extra={**_EXTRA, "host": self.config.host, "level1_port": self.level1_port,
                   "level2_port": self.level2_port, "admin_port": self.admin_port, "lookup_port": self.lookup_port,
                   "symbols": len(self.config.universe), "rate": self.config.rate,
                   "replay": str(self.config.replay) if self.config.replay else ""},
        )
        return self

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            try:
                loop.run_until_complete(self._open())
                self.hub.start(loop)
            except Exception as exc:  # noqa: BLE001 - reported to the caller of start()
                failure.append(exc)
                loop.run_until_complete(self._close_servers())
                return
            finally:
                ready.set()
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _open(self) -> None:
        for name in _SESSION_TYPES:
            await self._listen(name, self._port(name))

    async def _listen(self, name: str, port: int) -> None:
        hub = self.hub
        factory: Callable[[], ClientSession] = lambda: _SESSION_TYPES[name](hub)  # noqa: E731
        server = await asyncio.get_running_loop().create_server(
            factory, self.config.host, port, reuse_address=True, backlog=256
        )
        self._servers[name] = server
        setattr(self, f"{name}_port", server.sockets[0].getsockname()[1])

    async def _close_servers(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()

    def stop(self) -> None:
        """Close every socket, stop the loop and join the thread (safe to call twice)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        self._stopped.set()

        async def shutdown() -> None:
            await self._close_servers()
            await self.hub.close()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = None
        log.info("IQFeed simulator stopped", extra=_EXTRA)

    def __enter__(self) -> IQFeedSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- used by Faults.refuse_connections ---------------------------------------------------------

    def close_listeners(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()

    async def reopen_listeners(self) -> None:
        """Listen again on the same ports, retrying while the OS still holds one."""
        for name in _SESSION_TYPES:
            while name not in self._servers and not self._stopped.is_set():
                try:
                    await self._listen(name, self._port(name))
                except OSError as exc:
                    log.warning("cannot listen again yet", extra={**_EXTRA, "port": self._port(name), "error": str(exc)})
                    await asyncio.sleep(_REOPEN_RETRY_S)
        log.info("listening again", extra=_EXTRA)

