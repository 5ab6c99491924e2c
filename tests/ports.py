"""Ports for services a test starts in another process.

A port picked by binding to port 0 comes from the kernel's ephemeral range, and is free only
until the test closes its probe: the process under test binds its own listeners to port 0 (the
embedded simulator does) and the kernel may hand it the very same port, so the service the test
configured later finds it taken (CI: a /healthz request answered by the simulator's
``S,KEY,...``). Ports below the ephemeral range are never handed out for port 0, so a random
free one there can only collide with another test's explicit choice, which the random pick
makes rare and the bind probe catches while it is still taken.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_LOW = 20000
_HIGH = max(_LOW + 1000, _ephemeral_floor()) - 1


def free_port() -> int:
    """A port free now on 127.0.0.1 that the kernel will not give to another port-0 bind."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct such ports."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randint(_LOW, _HIGH)
        if port in chosen:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen
