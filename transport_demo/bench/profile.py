"""``python -m transport_demo.bench.profile TARGET``: where a server spends its time.

Starts the target's server in its own process, samples it with py-spy while a burst runs
(``--burst N``) or while N idle connections heartbeat (``--idle N``), and prints the functions
with the most samples: by themselves (``self``) and with what they call (``inclusive``).
``--raw FILE`` keeps py-spy's collapsed stacks (for a flame graph: ``py-spy``'s own SVG output, or
speedscope).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .capacity import capacity
from .probes import PROBES
from .scenarios import collect, opened
from .targets import ServerProcess

__all__ = ["main", "top_frames"]


def top_frames(
    raw: str, count: int = 25
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: total samples, top ``self`` and top ``inclusive``
    frames with their share (%)."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not (samples.isascii() and samples.isdigit()):
            continue
        n = int(samples)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n

    def share(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(frame, 100 * n / max(total, 1)) for frame, n in counter.most_common(count)]

    return total, share(own), share(inclusive)


def _spy(pid: int, out: Path, seconds: float) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen(
        [spy, "record", "-p", str(pid), "-o", str(out), "--format", "raw", "-r", "250",
         "-d", str(max(1, round(seconds))), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m transport_demo.bench.profile")
    parser.add_argument("target", choices=list(PROBES))
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--burst", type=int, default=2000, help="messages per burst to one client")
    what.add_argument("--idle", type=int, default=0, help="idle connections with heartbeats")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long to sample")
    parser.add_argument("--heartbeat", type=float, default=5.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    raw = args.raw or Path(tempfile.mkdtemp()) / "profile.txt"
    family, probe_type = PROBES[args.target]
    if args.idle:
        # Sample the server once every connection is open and heartbeating.
        def attach(server: ServerProcess) -> None:
            time.sleep(2 * args.heartbeat + 1)
            _spy(server.pid, raw, args.seconds).wait()

        capacity(args.target, [args.idle], heartbeat=args.heartbeat,
                 listen=args.seconds + 2 * args.heartbeat + 2, on_start=attach)  # fmt: skip
    else:
        with ServerProcess(family, args.heartbeat) as server:

            async def burst() -> None:
                async with opened(probe_type(server.port)) as probe:
                    spy = _spy(server.pid, raw, args.seconds)
                    await asyncio.sleep(1)  # py-spy attaches
                    deadline = time.monotonic() + args.seconds
                    while time.monotonic() < deadline:
                        await collect(probe, server, args.burst, 0, 60)
                    await asyncio.to_thread(spy.wait)

            asyncio.run(burst())
    total, own, inclusive = top_frames(raw.read_text(), args.top)
    print(f"{args.target}: {total} samples")
    for title, rows in (("self", own), ("inclusive", inclusive)):
        print(f"--- {title}")
        for frame, pct in rows:
            print(f"{pct:5.1f}%  {frame[:140]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
