"""Small facts about this machine the benchmark needs: one clock for every process, free ports,
resident memory, the open-file limit."""

from __future__ import annotations

import resource
import socket
import time

__all__ = ["children", "free_port", "raise_fd_limit", "rss_kib", "stamp"]


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
