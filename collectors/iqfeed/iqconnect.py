"""Keep IQConnect running and connected to DTN, restarting it when it is not.

On Linux IQConnect.exe runs under wine (and a display, so optionally Xvfb). The
supervisor launches ``feed.launch_command``, then holds an admin connection open for
as long as the process lives: that connection both tells us whether IQConnect is
connected to DTN (``S,STATS`` Status) and keeps IQConnect alive, since it exits a few
seconds after its last client leaves. The process is restarted, with exponential
backoff and a counter, when it exits or when it stays ``Not Connected`` for longer
than ``feed.connect_timeout_s``. A process that never connected in that time is
reported as a login or entitlement problem, because that is what a wrong login looks
like: IQConnect fails silently and the status just never becomes Connected.

The login and password appear only in the child's argument list: the logged command
shows them as ``***`` and any output line of the child is scrubbed of both.
"""

from __future__ import annotations

import logging
import os
import random
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Final

from collectors.iqfeed.connections import AdminConnection, Backoff
from config import FeedSettings

log = logging.getLogger(__name__)

_POLL_S: Final = 0.2
_TERMINATE_GRACE_S: Final = 5.0
_REDACTED: Final = "***"


class LaunchCommandError(ValueError):
    """``feed.launch_command`` cannot be built (unknown placeholder or bad quoting)."""


@dataclass(frozen=True, slots=True)
class SupervisorState:
    """What the dashboard and health checks show about IQConnect."""

    running: bool
    pid: int | None
    dtn_connected: bool | None
    restarts: int
    last_exit_code: int | None
    problem: str


class IQConnectSupervisor:
    """Launches IQConnect, watches it over the admin port, restarts it when needed."""

    def __init__(
        self,
        settings: FeedSettings,
        *,
        cwd: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._cwd = cwd
        self._clock = clock
        self._secrets = [s for s in (settings.password.get_secret_value(), settings.login.get_secret_value()) if s]
        self.command = self._build_command(settings.login.get_secret_value(), settings.password.get_secret_value())
        self.display_command = shlex.join(self._build_command(_REDACTED, _REDACTED))
        self._backoff = Backoff(settings.restart_initial_s, settings.restart_max_s, rng)
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: AdminConnection | None = None
        self._restarts = 0
        self._last_exit_code: int | None = None
        self._problem = ""

    def _build_command(self, login: str, password: str) -> list[str]:
        """Split the template first, then fill each word: a password with spaces stays one argument."""
        values = {
            "product": self.settings.product_id,
            "version": self.settings.product_version,
            "login": login,
            "password": password,
        }
        try:
            words = [word.format(**values) for word in shlex.split(self.settings.launch_command)]
        except (KeyError, IndexError, ValueError) as exc:
            raise LaunchCommandError(
                f"feed.launch_command cannot be built ({exc}); placeholders are {{product}}, {{version}}, "
                "{login} and {password}"
            ) from None
        if not words:
            raise LaunchCommandError("feed.launch_command is empty")
        return ["xvfb-run", "-a", *words] if self.settings.launch_under_xvfb else words

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        """Launch IQConnect and supervise it from a background thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="iqconnect-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        """Stop supervising, close the admin connection and terminate IQConnect."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def wait_connected(self, timeout_s: float) -> bool:
        """True once IQConnect reports Connected to DTN, False if the timeout passes first."""
        return self._connected.wait(timeout_s)

    @property
    def state(self) -> SupervisorState:
        process = self._process
        admin = self._admin
        return SupervisorState(
            running=process is not None and process.poll() is None,
            pid=process.pid if process is not None else None,
            dtn_connected=admin.state.dtn_connected if admin is not None else None,
            restarts=self._restarts,
            last_exit_code=self._last_exit_code,
            problem=self._problem,
        )

    # --------------------------------------------------------------------- loop

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reason = self._supervise_once()
            except OSError as exc:  # the executable is missing or not runnable
                reason = f"launch failed: {self._scrub(str(exc))}"
                self._problem = reason
                log.error("IQConnect launch failed", extra={"error": reason, "command": self.display_command})
            if self._stop.is_set():
                break
            self._restarts += 1
            delay = self._backoff.next_delay()
            log.warning(
                "restarting IQConnect",
                extra={"reason": reason, "restarts": self._restarts, "delay_s": round(delay, 3)},
            )
            self._stop.wait(delay)

    def _supervise_once(self) -> str:
        """Launch one IQConnect and watch it; returns why it has to be restarted."""
        log.info("launching IQConnect", extra={"command": self.display_command})
        process = subprocess.Popen(
            self.command,
            cwd=self._cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: wine's children go with it
        )
        self._process = process
        assert process.stdout is not None
        threading.Thread(target=self._drain, args=(process.stdout,), name="iqconnect-output", daemon=True).start()
        admin = AdminConnection(self.settings, on_dtn_change=self._dtn_changed)
        self._admin = admin
        admin.start()
        try:
            return self._watch(process, admin)
        finally:
            admin.stop()
            self._connected.clear()
            self._terminate(process)

    def _watch(self, process: subprocess.Popen[bytes], admin: AdminConnection) -> str:
        launched = self._clock()
        down_since = launched
        ever_connected = False
        timeout = self.settings.connect_timeout_s
        while not self._stop.wait(_POLL_S):
            code = process.poll()
            if code is not None:
                self._last_exit_code = code
                self._problem = f"IQConnect exited with code {code}"
                log.error("IQConnect exited", extra={"exit_code": code, "pid": process.pid})
                return self._problem
            now = self._clock()
            if admin.state.dtn_connected:
                if not ever_connected:
                    ever_connected = True
                    self._backoff.reset()
                    self._problem = ""
                    log.info(
                        "IQConnect connected to DTN",
                        extra={"pid": process.pid, "after_s": round(now - launched, 3)},
                    )
                down_since = now
                continue
            if now - down_since > timeout:
                if ever_connected:
                    self._problem = f"IQConnect has not been connected to DTN for {timeout:g} s"
                else:
                    self._problem = (
                        f"IQConnect never connected to DTN within {timeout:g} s: this is a login or "
                        "entitlement problem; check feed.login, feed.password and feed.product_id "
                        "(and that the account is entitled to the product)"
                    )
                log.error("IQConnect not connected", extra={"problem": self._problem, "pid": process.pid})
                return self._problem
        return "stopped"

    def _dtn_changed(self, connected: bool) -> None:
        if connected:
            self._connected.set()
        else:
            self._connected.clear()

    def _terminate(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process group, then SIGKILL after a grace period."""
        if process.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(process.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    process.wait(_TERMINATE_GRACE_S)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if process.poll() is not None:
            self._last_exit_code = process.returncode

    def _drain(self, stream: IO[bytes]) -> None:
        """Log the child's output at DEBUG, scrubbed of the login and password."""
        with stream:
            for raw in stream:
                line = raw.decode("latin-1").rstrip()
                if line:
                    log.debug("iqconnect output", extra={"output": self._scrub(line)})

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, _REDACTED)
        return text
