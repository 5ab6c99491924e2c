"""Headless engine: ``python -m runtime run`` (``python -m collectors run`` is an alias; the same Engine
as the dashboard embeds).

Runs until SIGTERM or SIGINT, then stops the feed and flushes producer, writer and
backup so nothing received is lost. Exit code 2 for bad configuration.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from monitoring.logs import start_process

log = logging.getLogger("runtime")


def run() -> int:
    settings = start_process("collector")
    from collectors.iqfeed.iqconnect import LaunchCommandError
    from runtime.engine import Engine
    from runtime.metrics import start_monitoring

    try:
        engine = Engine(settings).start()
    except LaunchCommandError as exc:
        print(exc, file=sys.stderr)
        return 2
    monitoring = None
    if settings.monitoring.enabled:
        monitoring = start_monitoring(engine.status, settings.monitoring.host, settings.monitoring.port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("headless engine running; SIGTERM or Ctrl-C stops it", extra={"source": engine.source})
    stop.wait()
    engine.stop()
    if monitoring is not None:
        monitoring.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the engine until SIGTERM/SIGINT (configuration: TICKOPS_* env, TOML)")
    parser.parse_args(argv)
    return run()


if __name__ == "__main__":
    sys.exit(main())
