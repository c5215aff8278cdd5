"""Small facts about this machine the benchmark needs: one clock for every process, free ports,
resident memory, the open-file limit, and the TLS certificate the https targets share."""

from __future__ import annotations

import functools
import os
import resource
import socket
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server.certificates import Certificate

__all__ = [
    "bench_certificate",
    "children",
    "client_tls",
    "cpu_seconds",
    "free_port",
    "raise_fd_limit",
    "rss_kib",
    "stamp",
    "udp_receive_drops",
]

CERT_ENV = ("BENCH_TLS_CERT", "BENCH_TLS_KEY")
"""Where the run's certificate is: set by the first process that needs one, read by the server
process and the capacity clients it starts (both inherit the environment)."""


def stamp(size: int) -> str:
    """A text of ``size`` characters that starts with the monotonic clock in nanoseconds."""
    head = str(time.monotonic_ns())
    return head + " " + "x" * max(0, size - len(head) - 1)


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit (10,000 sockets need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB (Linux ``/proc``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, user and system, seconds (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        # The fields after the command's ")" (which may itself hold spaces): utime and stime are
        # the 14th and 15th of the whole line, the 12th and 13th after it.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The process's descendants (Linux ``/proc``), e.g. a supervisor's worker processes."""
    found: list[int] = []
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as listing:
            direct = [int(child) for child in listing.read().split()]
    except OSError:
        return found
    for child in direct:
        found += [child, *children(child)]
    return found


def bench_certificate() -> Certificate:
    """The run's TLS certificate for 127.0.0.1: made once (by the process that runs the
    benchmark), then read from the files :data:`CERT_ENV` names in every process it starts."""
    from ..server.certificates import load_certificate, make_certificate

    cert, key = (os.environ.get(name) for name in CERT_ENV)
    if cert and key and Path(cert).exists():
        return load_certificate(Path(cert), Path(key))
    made = make_certificate(["127.0.0.1"])
    os.environ.update(zip(CERT_ENV, (str(made.cert_file), str(made.key_file)), strict=True))
    return made


@functools.cache
def client_tls(alpn: str) -> ssl.SSLContext:
    """A client context that trusts the run's certificate and offers only ``alpn`` (``"h2"`` or
    ``"http/1.1"``): each https target gets the version it is named for, or fails."""
    context = ssl.create_default_context(cafile=str(bench_certificate().cert_file))
    context.set_alpn_protocols([alpn])
    return context


def udp_receive_drops() -> int:
    """UDP datagrams this machine's kernel dropped so far because a socket's receive buffer was
    full (``RcvbufErrors`` of ``/proc/net/snmp``; every socket of the machine, in this network
    namespace): a QUIC server whose loop falls behind loses packets here, and QUIC resends them."""
    with open("/proc/net/snmp", encoding="ascii") as snmp:
        rows = [line.split() for line in snmp if line.startswith("Udp:")]
    names, values = rows[0], rows[1]
    return int(values[names.index("RcvbufErrors")])
