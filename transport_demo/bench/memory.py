"""Where a server's memory per connection goes: ``python -m transport_demo.bench.memory TARGET``.

Starts the target in its own process with tracemalloc on, opens N idle connections with the
capacity benchmark's clients, and reports resident memory (RSS) per connection beside the Python
allocations per connection, by source file. tracemalloc sees every allocation through Python's
allocators, raw ones included: zlib's state for permessage-deflate is among them (CPython's zlib
module allocates it with ``PyMem_RawMalloc``), under the file that made the compressor. What RSS
has and tracemalloc does not: C libraries' own ``malloc`` (httptools' parser), the allocator's
overhead and fragmentation. ``python -m transport_demo.bench.layers`` puts these figures beside
the kernel's and the floor's.

Tracing slows the server several times over: use it for the breakdown, never for speed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx

from .capacity import _ask, _workers
from .probes import PROBES
from .system import rss_kib
from .targets import ServerProcess

__all__ = ["breakdown", "main"]


def breakdown(
    target: str, connections: int, *, heartbeat: float = 5.0, spread: float | None = None
) -> dict[str, Any]:
    """RSS and traced Python memory per connection for ``connections`` idle connections, opened
    over ``spread`` seconds (default: one heartbeat interval)."""
    os.environ["PYTHONTRACEMALLOC"] = "1"  # the server process inherits it
    try:
        with (
            ServerProcess(PROBES[target][0], heartbeat) as server,
            _workers(target, server.port, heartbeat, 1) as pipes,
        ):
            url = f"{server.scheme}://127.0.0.1:{server.port}/bench/memory"
            verify = server.tls or True  # an https target: trust the run's certificate
            time.sleep(0.5)
            httpx.get(url, params={"mark": 1}, timeout=30, verify=verify)
            before = rss_kib(server.pid)
            ((opened, failed, links, _),) = _ask(
                pipes, "grow", [(connections, heartbeat if spread is None else spread)]
            )
            time.sleep(min(2.0, heartbeat))  # handshakes settle
            after = rss_kib(server.pid)
            traced = httpx.get(url, timeout=60, verify=verify).json()
    finally:
        os.environ.pop("PYTHONTRACEMALLOC", None)
    per = max(opened, 1)
    return {
        "target": target,
        "connections": opened,
        "failed": failed,
        "tcp_connections": links,
        "rss_per_connection_kib": round((after - before) / per, 2),
        "traced_per_connection_kib": round(traced.get("bytes", 0) / 1024 / per, 2),
        "by_file": [
            {
                "file": _short(row["file"]),
                "kib_per_connection": round(row["bytes"] / 1024 / per, 2),
                "blocks_per_connection": round(row["blocks"] / per, 1),
            }
            for row in traced.get("top", [])
            if row["bytes"] / 1024 / per >= 0.05
        ],
    }


def _short(path: str) -> str:
    """A source file's name from its package on: ``uvicorn/…``, ``asyncio/…``,
    ``transport_demo/…``."""
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    if "transport_demo/" in path:
        return "transport_demo/" + path.rsplit("transport_demo/", 1)[1]
    stdlib = re.search(r"lib/python3\.\d+/(.*)", path)
    return stdlib.group(1) if stdlib else path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transport_demo.bench.memory")
    parser.add_argument("targets", nargs="+", help=f"any of: {', '.join(PROBES)}")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--heartbeat", type=float, default=5.0)
    args = parser.parse_args(argv)
    for target in args.targets:
        if target not in PROBES:
            parser.error(f"unknown target {target!r}")
        print(json.dumps(breakdown(target, args.connections, heartbeat=args.heartbeat), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
