"""The test suite's port picker never hands out a port the kernel could give to a port-0 bind."""

from __future__ import annotations

import socket

from tests.ports import _ephemeral_floor, free_port, free_ports


def test_picked_ports_are_below_the_ephemeral_range_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    for port in ports + [free_port()]:
        assert port < _ephemeral_floor()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_port_bound_to_zero_is_never_one_the_picker_would_choose() -> None:
    """The CI failure: the engine's simulator bound port 0 and got the test's monitoring port."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        assert listener.getsockname()[1] >= _ephemeral_floor()
