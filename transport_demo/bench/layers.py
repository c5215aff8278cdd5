"""Where an idle connection's memory goes, per layer: ``python -m transport_demo.bench.layers``.

For N idle connections per target (default 2,000, loopback only, a few minutes in all) it measures,
per connection:

* **kernel** — the server's end of the connection: one object of each slab cache a TCP socket in an
  epoll set takes (:data:`SOCKET_CACHES`), at this kernel's object sizes (``/proc/slabinfo``,
  root only), plus what ``ss -tm``'s ``skmem`` says its buffers hold (``r`` received and unread,
  ``t`` sent and not yet freed, ``w`` queued to send, ``f`` reserved ahead, ``o`` options, ``bl``
  backlog; ``rb`` and ``tb`` are caps, not memory: ``man ss``). The caches' growth over the run
  is kept as the check: about two objects each per connection, as client and server share this
  machine (whatever else the machine does moves it too, which is why it is not the figure).
* **event loop** — the floor: a bare ``asyncio.Protocol`` server that only keeps its transports,
  its resident memory (RSS) per connection; and, for every target, what tracemalloc attributes to
  asyncio's own files (transports, selector keys, timers, futures).
* **framework** — tracemalloc's per-file attribution of the server's allocations (a second run, as
  tracing costs memory of its own): uvicorn, Starlette, FastAPI, anyio, contextlib, websockets,
  pydantic and the rest of the standard library; **ours** — this package's own files.
* **compression** — permessage-deflate: what tracemalloc puts under websockets'
  ``permessage_deflate.py``, which is mostly zlib's state (CPython's zlib module allocates it
  with ``PyMem_RawMalloc``, which tracemalloc traces). The RSS with and without deflate checks it.
* **rest** — RSS minus everything traced: C libraries' own ``malloc`` (httptools' parser), the
  allocator's overhead and fragmentation. With the kernel's share it makes the total, so the
  layers add up to kernel + RSS by construction (rest can come out a little below zero: the
  traced and the untraced runs are two runs).
* **replay buffer** — not idle: what each unacknowledged event holds in the connection's buffer
  (measured on the real :class:`~transport_demo.server.connection.Connection`, in this process),
  and a full default replay window of them.

Prints a markdown table and writes JSON (``--json``, default ``docs/bench/memory-layers.json``:
run it from the repository's root).
Figures move between runs on a shared machine: read them to a kibibyte or so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

from .capacity import _ask, _workers
from .memory import _short, breakdown
from .probes import PROBES
from .system import raise_fd_limit, rss_kib, stamp
from .targets import ServerProcess

__all__ = ["FLOOR", "NO_DEFLATE", "TARGETS", "layers", "main", "markdown", "replay_buffer"]

FLOOR = "floor"
"""A bare ``asyncio.Protocol`` server (no HTTP, no framework): the event loop's floor."""
NO_DEFLATE = "ours websocket no-deflate"
"""Our WebSocket with permessage-deflate off (``TRANSPORT_DEMO_WS_COMPRESSION=false``)."""
TARGETS = (FLOOR, "ours long-polling", "ours sse", "ours websocket", NO_DEFLATE)
SETTLE_S = 2.0  # after the last open: handshakes and first answers settle before measuring
SOCKET_CACHES = (
    "TCP",  # struct tcp_sock: the connection's whole TCP state
    "sock_inode_cache",  # struct socket_alloc: the BSD socket and its inode
    "filp",  # struct file: the descriptor's open file
    "dentry",  # the socket file's (pseudo-filesystem) name
    "eventpoll_epi",  # struct epitem: the socket's entry in the loop's epoll set
    "ep_head",  # the list of epoll sets a file is in
    "lsm_file_cache",  # security modules' blob per file
    "lsm_inode_cache",  # … and per inode
)
"""The slab caches a TCP socket in an epoll set takes one object of (those this kernel has).
SLUB merges caches of one size: a name can stand for others too (``eventpoll_epi`` grows by
about four objects per connection here, where two are epoll entries)."""
SKMEM_FIELDS = ("r", "rb", "t", "tb", "f", "w", "o", "bl", "d")
HELD_FIELDS = ("r", "t", "f", "w", "o", "bl")  # bytes held; rb, tb are caps and d a count
KIB = 1024
_TRACED_LAYERS = ("event loop", "framework", "ours", "compression")

# tracemalloc's files (named as memory._short names them), by layer; the first match wins.
_LAYER_OF_FILE: tuple[tuple[str, str], ...] = (
    ("transport_demo/", "ours"),
    ("websockets/extensions/permessage_deflate.py", "compression"),
    ("asyncio/", "event loop"),
    ("selectors.py", "event loop"),
    ("socket.py", "event loop"),
)


# -- kernel ----------------------------------------------------------------------------------------


def slabinfo() -> dict[str, tuple[int, int]]:
    """``/proc/slabinfo``: cache name -> (active objects, object size in bytes). Only root may
    read it: for anyone else, empty (the kernel layer is then skmem's alone, and says so)."""
    caches: dict[str, tuple[int, int]] = {}
    try:
        lines = open("/proc/slabinfo", encoding="ascii")  # noqa: SIM115
    except PermissionError:
        return caches
    with lines:
        for line in lines:
            if line.startswith(("slabinfo", "#")):
                continue
            name, active, _total, size, *_ = line.split()
            caches[name] = (int(active), int(size))
    return caches


def slab_growth(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], connections: int
) -> list[dict[str, Any]]:
    """How much each of :data:`SOCKET_CACHES` grew per connection: objects and bytes, both ends
    of it (client and server share this machine), and the object's size on this kernel."""
    rows = []
    for name in SOCKET_CACHES:
        if name not in after:
            continue
        active, size = after[name]
        grown = active - before.get(name, (0, size))[0]
        rows.append(
            {
                "cache": name,
                "object_bytes": size,
                "objects_per_connection": round(grown / connections, 2),
                "bytes_per_connection": round(grown * size / connections),
            }
        )
    return rows


def settled_slabinfo(timeout: float = 10.0) -> dict[str, tuple[int, int]]:
    """``/proc/slabinfo`` once the TCP cache has stopped moving for half a second: a closed
    socket is freed when its closing handshake is over, not at ``close()``, so the last target's
    sockets may still be leaving it."""
    deadline = time.monotonic() + timeout
    last = slabinfo()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = slabinfo()
        if now.get("TCP") == last.get("TCP"):
            return now
        last = now
    return last


def skmem(port: int) -> dict[str, Any]:
    """The server's established sockets on ``port`` as ``ss -tm`` shows them: how many, and each
    ``skmem`` field's mean over them in bytes (``man ss``: r rmem_alloc, rb rcv_buf, t
    wmem_alloc, tb snd_buf, f fwd_alloc, w wmem_queued, o opt_mem, bl back_log, d sock_drop)."""
    out = subprocess.run(
        ["ss", "-tmHn", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    sockets = [
        dict(re.findall(r"([a-z]+)(\d+)", found)) for found in re.findall(r"skmem:\(([^)]*)\)", out)
    ]
    count = len(sockets)
    means = {
        field: round(sum(int(s.get(field, 0)) for s in sockets) / max(count, 1), 1)
        for field in SKMEM_FIELDS
    }
    held = sum(means[field] for field in HELD_FIELDS)
    return {"sockets": count, "mean_bytes": means, "held_bytes_per_socket": round(held, 1)}


# -- the floor: a bare asyncio.Protocol server, and its clients ------------------------------------


class _Keep(asyncio.Protocol):
    """Keeps the connection and does nothing else: the least an asyncio server holds per socket."""

    def __init__(self, held: set[asyncio.BaseTransport]) -> None:
        self.held = held
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.held.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.held.discard(self.transport)


def _traced_by_file(mark: tracemalloc.Snapshot) -> dict[str, Any]:
    snapshot = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )
    diff = snapshot.compare_to(mark, "filename")
    return {
        "bytes": sum(stat.size_diff for stat in diff),
        "top": [
            {"file": s.traceback[0].filename, "bytes": s.size_diff, "blocks": s.count_diff}
            for s in diff
            if s.size_diff > 0
        ][:30],
    }


def _floor_server(pipe: Pipe, traced: bool) -> None:
    raise_fd_limit()
    if traced:
        tracemalloc.start()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        held: set[asyncio.BaseTransport] = set()
        server = await loop.create_server(lambda: _Keep(held), "127.0.0.1", 0, backlog=2048)
        pipe.send(server.sockets[0].getsockname()[1])
        mark: tracemalloc.Snapshot | None = None
        while True:
            command = await loop.run_in_executor(None, pipe.recv)
            if command == "mark" and traced:
                mark = tracemalloc.take_snapshot()
                pipe.send(None)
            elif command == "report":
                pipe.send(_traced_by_file(mark) if mark is not None else {"held": len(held)})
            else:
                server.close()
                pipe.send(None)
                return

    asyncio.run(serve())


def _floor_clients(pipe: Pipe, port: int) -> None:
    raise_fd_limit()

    async def hold() -> None:
        loop = asyncio.get_running_loop()
        limit = asyncio.Semaphore(64)
        transports: list[asyncio.BaseTransport] = []

        async def open_one() -> None:
            async with limit:
                transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
                transports.append(transport)

        count = await loop.run_in_executor(None, pipe.recv)
        results = await asyncio.gather(*(open_one() for _ in range(count)), return_exceptions=True)
        pipe.send((len(transports), sum(isinstance(r, BaseException) for r in results)))
        await loop.run_in_executor(None, pipe.recv)
        for transport in transports:
            transport.close()
        pipe.send(None)

    asyncio.run(hold())


@contextlib.contextmanager
def _floor(traced: bool) -> Iterator[tuple[int, int, Pipe]]:
    """The floor server in its own process: yields (pid, port, control pipe)."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_floor_server, args=(theirs, traced))
    process.start()
    try:
        if not ours.poll(30):
            raise RuntimeError("the floor server did not start")
        yield process.pid or 0, ours.recv(), ours
    finally:
        _stop(process, ours, "stop", 10)


@contextlib.contextmanager
def _floor_connections(port: int) -> Iterator[Callable[[int], tuple[int, int]]]:
    """A client process for the floor, started now: yields ``grow(count)``, which opens ``count``
    idle connections and returns (opened, failed); they close when the block ends."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_floor_clients, args=(theirs, port))
    process.start()

    def grow(count: int) -> tuple[int, int]:
        ours.send(count)
        if not ours.poll(120):
            raise RuntimeError("the floor's clients did not finish opening")
        opened: tuple[int, int] = ours.recv()
        return opened

    try:
        yield grow
    finally:
        _stop(process, ours, "close", 30)


def _stop(process: Any, pipe: Any, word: str, wait: float) -> None:
    """Ask a helper process to end (``word`` on its pipe, ``wait`` seconds for its answer), then
    join it, killing it if it is still there."""
    with contextlib.suppress(OSError, EOFError):
        pipe.send(word)
        pipe.poll(wait)
    process.join(10)
    if process.is_alive():
        process.kill()


# -- one target, untraced and traced ---------------------------------------------------------------


@contextlib.contextmanager
def _environment(target: str) -> Iterator[None]:
    """The server process's environment for ``target`` (it inherits this process's)."""
    if target != NO_DEFLATE:
        yield
        return
    os.environ["TRANSPORT_DEMO_WS_COMPRESSION"] = "false"
    try:
        yield
    finally:
        os.environ.pop("TRANSPORT_DEMO_WS_COMPRESSION", None)


def _probe_target(target: str) -> str:
    return "ours websocket" if target == NO_DEFLATE else target


def _untraced(target: str, connections: int, spread: float, heartbeat: float) -> dict[str, Any]:
    """Server RSS, slab growth and skmem for ``connections`` idle connections to ``target``."""

    def measure(pid: int, port: int, grow: Callable[[], tuple[int, int]]) -> dict[str, Any]:
        time.sleep(0.5)
        slab0 = settled_slabinfo()
        rss0 = rss_kib(pid)
        opened, failed = grow()
        time.sleep(SETTLE_S)
        rss1, slab1, sk = rss_kib(pid), slabinfo(), skmem(port)
        per = max(opened, 1)
        return {
            "connections": opened,
            "failed": failed,
            "rss_per_connection_kib": round((rss1 - rss0) / per, 2),
            "slab": slab_growth(slab0, slab1, per),
            "skmem": sk,
        }

    if target == FLOOR:
        with _floor(traced=False) as (pid, port, _), _floor_connections(port) as floor_grow:
            return measure(pid, port, lambda: floor_grow(connections))
    probe = _probe_target(target)
    with (
        _environment(target),
        ServerProcess(PROBES[probe][0], heartbeat) as server,
        _workers(probe, server.port, heartbeat, 1) as pipes,
    ):

        def grow() -> tuple[int, int]:
            ((opened, failed, _, _),) = _ask(pipes, "grow", [(connections, spread)])
            return opened, failed

        return measure(server.pid, server.port, grow)


def _traced(target: str, connections: int, spread: float, heartbeat: float) -> dict[str, Any]:
    """tracemalloc's Python allocations per connection, by file and by layer (a separate run:
    tracing adds memory of its own, so its RSS is not the untraced run's)."""
    if target == FLOOR:
        with _floor(traced=True) as (_, port, pipe), _floor_connections(port) as floor_grow:
            time.sleep(0.5)
            pipe.send("mark")
            pipe.recv()
            opened, _ = floor_grow(connections)
            time.sleep(SETTLE_S)
            pipe.send("report")
            report = pipe.recv()
        per = max(opened, 1)
        rows = [
            {
                "file": _short(row["file"]),
                "kib_per_connection": round(row["bytes"] / KIB / per, 2),
                "layer": "event loop",
            }
            for row in report["top"]
            if row["bytes"] / KIB / per >= 0.05
        ]
        traced_kib = round(report["bytes"] / KIB / per, 2)
        # All of it is the floor's: the transports, selector keys and the protocol that keeps
        # each (in this file), and the weak references asyncio's server keeps to them.
        return {
            "traced_per_connection_kib": traced_kib,
            "by_layer_kib": {"event loop": traced_kib},
            "by_file": rows,
        }
    with _environment(target):
        found = breakdown(_probe_target(target), connections, heartbeat=heartbeat, spread=spread)
    rows = [
        {"file": row["file"], "kib_per_connection": row["kib_per_connection"]}
        for row in found["by_file"]
    ]
    traced_kib = found["traced_per_connection_kib"]
    by_layer = {"event loop": 0.0, "framework": 0.0, "ours": 0.0, "compression": 0.0}
    for row in rows:
        row["layer"] = layer_of(row["file"])
        by_layer[row["layer"]] += row["kib_per_connection"]
    # Files under 0.05 KiB per connection are left out of the rows (and past the top 30): their
    # sum, a few allocations each from many files, counts as framework.
    by_layer["framework"] += traced_kib - sum(by_layer.values())
    return {
        "traced_per_connection_kib": traced_kib,
        "by_layer_kib": {name: round(value, 2) for name, value in by_layer.items()},
        "by_file": rows,
    }


def layer_of(file: str) -> str:
    """The layer a source file's allocations belong to (``file`` as ``memory._short`` names it):
    ours, compression, event loop, or framework (the web stack and the rest of the standard
    library: what stands between the event loop and our code)."""
    for prefix, layer in _LAYER_OF_FILE:
        if file.startswith(prefix):
            return layer
    return "framework"


# -- the replay buffer -----------------------------------------------------------------------------


def replay_buffer(events: int | None = None, size: int = 64) -> list[dict[str, Any]]:
    """Bytes each stored event holds in a connection's replay buffer, per transport: ``events``
    events of ``size`` characters appended and handed to the socket (streams) but never
    acknowledged, on the real :class:`~transport_demo.server.connection.Connection` in this
    process. ``events`` defaults to the replay window
    (:class:`~transport_demo.server.settings.Settings`): a stream whose client never resumes keeps
    that many for as long as it lives; a long poll keeps what its next poll has not acknowledged.

    Counted with ``sys.getsizeof`` (the list, each ``(seq, encoded)`` tuple, its string and its
    seq), not tracemalloc: CPython reuses freed tuples and ints from free lists, which tracemalloc
    does not see as new allocations. Sizes are the objects' own, before pymalloc rounds each up
    to a multiple of 16 bytes."""
    from ..server.connection import Connection, Limits, new_connection_id
    from ..server.protocol import EventType, Transport
    from ..server.settings import Settings

    settings = Settings()
    window = settings.replay_window
    count = window if events is None else events
    limits = Limits(max_queue=max(settings.max_queue, count), replay_window=window)
    rows = []
    for transport in (Transport.LONG_POLLING, Transport.SSE, Transport.WEBSOCKET):
        conn = Connection(new_connection_id(), transport, 0.0, wall=time.time(), limits=limits)
        for _ in range(count):
            conn.append(EventType.MESSAGE, stamp(size), wall=time.time())
            if not conn.polled:
                conn.take_unsent()  # written: kept for replay, up to the window
        stored = max(len(conn.buffer), 1)
        held = (
            sys.getsizeof(conn.buffer)
            - sys.getsizeof([])
            + sum(
                sys.getsizeof(entry)
                + sys.getsizeof(data)
                + (sys.getsizeof(seq) if seq > 256 else 0)
                for entry in conn.buffer
                for seq, data in (entry,)
            )
        )  # small ints (up to 256) are shared by the interpreter: not the buffer's
        encoded = sum(len(data) for _, data in conn.buffer) / stored
        rows.append(
            {
                "transport": transport.value,
                "events_stored": len(conn.buffer),
                "text_chars": size,
                "encoded_bytes_per_event": round(encoded, 1),
                "held_bytes_per_event": round(held / stored, 1),
                "replay_window": window,
                "full_window_kib": round(held / stored * window / KIB, 1),
            }
        )
    return rows


# -- all of it -------------------------------------------------------------------------------------


def layers(
    targets: Sequence[str] = TARGETS,
    connections: int = 2000,
    *,
    spread: float = 2.0,
    heartbeat: float = 60.0,
    trace: bool = True,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Measure every target (see the module docstring) and return the figures, JSON-ready.

    ``heartbeat`` is long (and long polls are held that long) so that the connections stay idle
    while measured; ``spread`` is the seconds over which each target's connections open."""
    rows: dict[str, dict[str, Any]] = {}
    started = _commit()
    for target in targets:
        if target != FLOOR and _probe_target(target) not in PROBES:
            raise ValueError(f"unknown target {target!r}")
        if progress is not None:
            progress(target)
        code = _commit()
        row = {"target": target, **_untraced(target, connections, spread, heartbeat)}
        if trace and target != "websockets":  # the bare websockets server has no /bench/memory
            row["traced"] = _traced(target, connections, spread, heartbeat)
        # The code each target ran, before and after: in a shared working tree it can move.
        row["code"] = sorted({code, _commit()})
        rows[target] = row
    for row in rows.values():
        row["layers_kib"] = _split(row)
    if "ours websocket" in rows and NO_DEFLATE in rows:  # the compression layer, checked by RSS
        deflate_rss_kib = (
            rows["ours websocket"]["rss_per_connection_kib"]
            - rows[NO_DEFLATE]["rss_per_connection_kib"]
        )
    else:
        deflate_rss_kib = None
    # Whether every server of ours ran the same code (the floor runs none of it): compare targets
    # only when it did.
    ran = {code for row in rows.values() if row["target"] != FLOOR for code in row["code"]}
    return {
        "connections": connections,
        "spread_s": spread,
        "heartbeat_s": heartbeat,
        "commit": started,
        "code_changed_during_run": len(ran) > 1,
        "slabinfo_readable": bool(slabinfo()),
        "targets": list(rows.values()),
        "deflate_rss_difference_kib": deflate_rss_kib,
        "replay_buffer": replay_buffer(),
    }


def _split(row: dict[str, Any]) -> dict[str, float]:
    """One target's layers, KiB per connection; they add up to ``total`` (kernel + RSS)."""
    socket_bytes = sum(r["object_bytes"] for r in row["slab"])  # one of each per socket
    kernel = (socket_bytes + row["skmem"]["held_bytes_per_socket"]) / KIB
    rss = row["rss_per_connection_kib"]
    traced = row.get("traced", {}).get("by_layer_kib", {})
    split = {"kernel": kernel, **{name: traced.get(name, 0.0) for name in _TRACED_LAYERS}}
    split["rest"] = kernel + rss - sum(split.values())
    split["total"] = kernel + rss
    return {name: round(value, 2) for name, value in split.items()}


def _commit() -> str:
    """The code measured: the commit, and when the package's files differ from it, ``+changes:``
    and a digest of the difference (so that two runs, or two targets, on different uncommitted
    code do not pass for the same)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        diff = subprocess.run(
            ["git", "-C", str(root), "diff", "HEAD", "--", "transport_demo"],
            capture_output=True, check=True, timeout=30,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+changes:{hashlib.sha1(diff).hexdigest()[:8]}" if diff else head


# -- printing --------------------------------------------------------------------------------------

_COLUMNS = ("kernel", *_TRACED_LAYERS, "rest", "total")


def markdown(results: dict[str, Any]) -> str:
    """The layers per target as a markdown table, then the replay buffer's."""
    lines = [
        f"KiB per idle connection, {results['connections']:,} connections "
        f"(commit {results['commit']}); kernel: the server's socket (slab objects, skmem buffers)",
        "",
        "| target | " + " | ".join(_COLUMNS) + " | server RSS |",
        "|---" * (len(_COLUMNS) + 2) + "|",
    ]
    for row in results["targets"]:
        split = row["layers_kib"]
        cells = [f"{split[name]:.1f}" for name in _COLUMNS]
        lines.append(
            f"| {row['target']} | "
            + " | ".join(cells)
            + f" | {row['rss_per_connection_kib']:.1f} |"
        )
    lines += [
        "",
        "| replay buffer | encoded bytes per event | held bytes per event | full window (events) |",
        "|---|---|---|---|",
    ]
    for row in results["replay_buffer"]:
        lines.append(
            f"| {row['transport']} | {row['encoded_bytes_per_event']:.0f} | "
            f"{row['held_bytes_per_event']:.0f} | {row['full_window_kib']:.0f} KiB "
            f"({row['replay_window']:,}) |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transport_demo.bench.layers")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--spread", type=float, default=2.0, help="seconds to open them over")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--json", default="docs/bench/memory-layers.json", help="'' for none")
    args = parser.parse_args(argv)
    results = layers(
        [t.strip() for t in args.targets.split(",") if t.strip()],
        args.connections,
        spread=args.spread,
        trace=not args.no_trace,
        progress=lambda target: print(f"measuring {target}…", file=sys.stderr, flush=True),
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(markdown(results))
    if results["code_changed_during_run"]:
        print(
            "warning: the package's code changed during the run (each target's 'code' in the JSON"
            " says which it ran): the targets are not comparable; run again on still code",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
