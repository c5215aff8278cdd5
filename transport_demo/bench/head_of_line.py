"""The head-of-line figures (issue 24): per-stream delivery delay at 0, 1, 2 and 5 % loss, over one
WebSocket and over one WebTransport session, in one run
(:func:`transport_demo.lab.head_of_line.compare_head_of_line` at each loss, same seed).

::

    python -m transport_demo.bench.head_of_line                 # 4 streams, 10 s per loss
    python -m transport_demo.bench.head_of_line --seconds 3 --out /tmp/hol.json

Writes the figures as JSON (``docs/bench/head_of_line.json`` by default) and prints the markdown
table docs/benchmarks.md quotes ("Head-of-line blocking under loss").
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from ..lab.head_of_line import HeadOfLine, compare_head_of_line

__all__ = ["LOSSES", "main", "markdown", "run"]

LOSSES = (0.0, 0.01, 0.02, 0.05)
"""The loss rates measured, each direction."""


def run(
    seconds: float = 10.0, streams: int = 4, seed: int = 1, delay_ms: float = 20.0
) -> dict[str, Any]:
    """Every loss rate in :data:`LOSSES`, one after another; the figures as plain data."""
    results: list[HeadOfLine] = [
        compare_head_of_line(
            loss=loss, streams=streams, seconds=seconds, seed=seed, delay_ms=delay_ms
        )
        for loss in LOSSES
    ]
    return {
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "settings": {"seconds": seconds, "streams": streams, "seed": seed, "delay_ms": delay_ms},
        "runs": [result.as_dict() for result in results],
    }


def _cell(values: list[float]) -> str:
    return " / ".join(f"{v:.0f}" for v in values)


def markdown(data: dict[str, Any]) -> str:
    """One row per loss rate: each transport's per-stream p50 and p99 (ms), the messages held
    by another stream's loss, and the datagrams lost."""
    lines = [
        "| loss | WebSocket p50 per stream (ms) | WebSocket p99 per stream | held | "
        "WebTransport p50 per stream | WebTransport p99 per stream | held | datagrams lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["runs"]:
        ws, wt = r["websocket"], r["webtransport"]
        lines.append(
            f"| {r['loss'] * 100:g} % "
            f"| {_cell([s['p50_ms'] for s in ws['streams']])} "
            f"| {_cell([s['p99_ms'] for s in ws['streams']])} | {ws['held']} "
            f"| {_cell([s['p50_ms'] for s in wt['streams']])} "
            f"| {_cell([s['p99_ms'] for s in wt['streams']])} | {wt['held']} "
            f"| {wt['datagrams_sent'] - wt['datagrams_received']} of {wt['datagrams_sent']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m transport_demo.bench.head_of_line")
    parser.add_argument("--seconds", type=float, default=10.0, help="per loss rate")
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one way")
    parser.add_argument("--out", type=Path, default=Path("docs/bench/head_of_line.json"))
    args = parser.parse_args(argv)
    data = run(args.seconds, args.streams, args.seed, args.delay_ms)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(markdown(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
