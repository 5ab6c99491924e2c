"""Benchmark: Level 1 output rate of the IQFeed simulator (one simulator process).

The simulator runs as its own process (``python -m collectors.iqfeed.simulator``) with
synthetic data; this process connects raw Level 1 sockets, watches every symbol and
counts the ``Q`` lines it receives for a fixed time. Reported: Q lines per second
received over all clients, bytes per second, the simulator process's CPU use and Q
lines per CPU-second of the simulator (its rate if it had a core to itself, which is
the number to trust on a shared machine), and the load average while measuring.

    .venv/bin/python bench/bench_simulator.py --symbols 1000 --rate 300000 --seconds 10 [--clients N] [--repeat N] [--trade-log]

Target (BENCHMARKS.md): at least 200,000 Level 1 messages per second from one process.
Each market event is formatted once and sent to every client watching its symbol, so
with N clients the simulator sends N lines per event: ``--clients 1`` measures the
event rate (formatting-bound), more clients the fan-out rate. ``target_rate`` above what
the simulator can generate makes it run flat out.

This machine's speed is not constant (a shared VM: the same pure-Python loop takes
from about 120 to 215 ns per iteration at different minutes, and the same simulator
build measures anywhere from ~150k to ~270k here), so ``--repeat`` runs the measurement
several times and adds a summary line (median, min, max); compare builds interleaved.

``--trade-log`` runs the simulator with its trade log on (a temporary file, removed
afterwards) and reports the rows it wrote: the cost of recording every trade.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.iqfeed.simulator.config import generated_symbols  # noqa: E402

_PORTS = re.compile(r"level1=(\d+) level2=(\d+) admin=(\d+) lookup=(\d+)")


def start_simulator(
    symbols: int, rate: float, seed: int, trade_log: Path | None = None
) -> tuple[subprocess.Popen[str], int, int]:
    """Launch the simulator on ephemeral ports; returns (process, level1 port, admin port)."""
    log_args = ["--trade-log", str(trade_log)] if trade_log is not None else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "collectors.iqfeed.simulator", "--level1-port", "0", "--level2-port", "0",
         "--admin-port", "0", "--lookup-port", "0", "--symbols", str(symbols), "--rate", str(rate),
         "--seed", str(seed), "--watch-limit", str(max(symbols, 1)), *log_args],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = _PORTS.search(line)
        if match:
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return proc, int(match.group(1)), int(match.group(3))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("simulator did not report its ports")


def _drain(stream: IO[str]) -> None:
    """Keep reading the simulator's log so a full pipe never blocks it."""
    for _ in stream:
        pass


def run(symbols: int, rate: float, seconds: float, clients: int, seed: int, trade_log: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-simulator-") as tmp:
        log_path = Path(tmp) / "trades.csv" if trade_log else None
        result = _measure(symbols, rate, seconds, clients, seed, log_path)
        if log_path is not None:
            with open(log_path, "rb") as handle:
                result["trade_log_rows"] = sum(1 for _ in handle) - 1
        return result


def _measure(symbols: int, rate: float, seconds: float, clients: int, seed: int,
             trade_log: Path | None) -> dict[str, float]:
    proc, port, _ = start_simulator(symbols, rate, seed, trade_log)
    try:
        names = generated_symbols(symbols)
        cpu = psutil.Process(proc.pid)
        sel = selectors.DefaultSelector()
        socks = []
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.sendall(b"S,SET PROTOCOL,6.2\r\n" + b"".join(f"w{n}\r\n".encode() for n in names))
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            socks.append(sock)
        warmup_end = time.monotonic() + 2.0
        q_lines = 0
        nbytes = 0
        tail = b""
        measuring = False
        started = 0.0
        end = warmup_end + seconds
        while True:
            now = time.monotonic()
            if not measuring and now >= warmup_end:
                measuring, started, q_lines, nbytes = True, now, 0, 0
                cpu_start = sum(cpu.cpu_times()[:2])
            if now >= end:
                break
            for key, _ in sel.select(timeout=0.1):
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                if not data:
                    raise RuntimeError("simulator closed the connection")
                q_lines += (tail + data).count(b"\nQ,")
                tail = data[-2:]
                nbytes += len(data)
        elapsed = time.monotonic() - started
        cpu_used = sum(cpu.cpu_times()[:2]) - cpu_start
        for sock in socks:
            sock.close()
        return {
            "symbols": symbols,
            "target_rate": rate,
            "clients": clients,
            "seconds": round(elapsed, 2),
            "q_lines_per_s": round(q_lines / elapsed),
            "mb_per_s": round(nbytes / elapsed / 1e6, 1),
            "simulator_cpu_share": round(cpu_used / elapsed, 2),
            "q_lines_per_cpu_s": round(q_lines / cpu_used) if cpu_used else 0,
            "load_average_1m": os.getloadavg()[0],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", type=int, default=1000)
    p.add_argument("--rate", type=float, default=300_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--repeat", type=int, default=1, help="measure this many times, then print a summary line")
    p.add_argument("--min-rate", type=float, default=0.0, help="exit 1 when the median Q lines per second is lower")
    p.add_argument("--trade-log", action="store_true", help="run the simulator with its trade log on")
    args = p.parse_args()
    rates = []
    for _ in range(max(1, args.repeat)):
        result = run(args.symbols, args.rate, args.seconds, args.clients, args.seed, args.trade_log)
        rates.append(result["q_lines_per_s"])
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
    median = statistics.median(rates)
    if len(rates) > 1:
        summary = {"runs": len(rates), "q_lines_per_s_median": round(median), "min": min(rates), "max": max(rates)}
        sys.stdout.write(json.dumps(summary) + "\n")
    return 1 if median < args.min_rate else 0


if __name__ == "__main__":
    sys.exit(main())
