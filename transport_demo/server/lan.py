"""The machine's address on the local network, found without sending a packet anywhere."""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["PROBE_ADDRESS", "is_wildcard", "lan_address"]

PROBE_ADDRESS = "192.0.2.1"
"""TEST-NET-1 (RFC 5737): reserved for documentation, never routed. Only the route to it is
looked up; nothing is sent there."""


def lan_address(probe: str = PROBE_ADDRESS) -> str:
    """The IPv4 address other machines on the network reach this one at (its default route's
    source address), or ``127.0.0.1`` when there is no network.

    ``connect`` on a UDP socket sends nothing (UDP has no handshake): it asks the kernel for the
    route to ``probe`` and fixes the source address the socket would use, which ``getsockname``
    then reads. With several interfaces this is the one with the default route, the one a
    classroom's Wi-Fi usually is; pass ``join_host=`` to the server to choose another.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((probe, 9))  # port 9: "discard"; no datagram is sent
            address = str(sock.getsockname()[0])
        except OSError:  # no route at all: an offline machine
            return "127.0.0.1"
    if address == "0.0.0.0" or ipaddress.ip_address(address).is_loopback:
        return "127.0.0.1"
    return address


def is_wildcard(host: str) -> bool:
    """Whether ``host`` listens on every interface (``0.0.0.0``, ``::`` or empty)."""
    return host in ("", "0.0.0.0", "::")
