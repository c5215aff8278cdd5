"""``python -m transport_demo.bench``: run the benchmark, print the tables, write JSON.

python -m transport_demo.bench                      # everything, about 15 minutes
python -m transport_demo.bench --quick              # seconds: tiny sizes
python -m transport_demo.bench --only latency,throughput --targets "ours sse,fastapi sse"
python -m transport_demo.bench --json artifacts/bench.json --plots docs/images
python -m transport_demo.bench --quick --delay-ms 50 --only latency,reconnect --targets "ours sse"
python -m transport_demo.bench --only capacity --targets "redis sse,redis-2 sse"   # on Redis
python -m transport_demo.bench --only http2 --steps 2000,10000   # HTTP/2 beside HTTP/1.1
python -m transport_demo.bench --only webtransport --steps 1000,2000   # WebTransport, WebSocket
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..lab.network import Conditions
from . import report
from .run import (
    ALL_SCENARIOS,
    ALL_TARGETS,
    HTTP2,
    HTTP2_SCENARIOS,
    SCENARIOS,
    TARGETS,
    WEBTRANSPORT,
    WEBTRANSPORT_SCENARIOS,
    Results,
    Sizes,
    plan,
    run,
)

PRESETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "http2": (HTTP2_SCENARIOS, HTTP2),
    "webtransport": (WEBTRANSPORT_SCENARIOS, WEBTRANSPORT),
}
"""``--only NAME``: a comparison's scenarios on its targets."""


def _names(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown {what}: {', '.join(unknown)} (choose from: {', '.join(allowed)})"
        )
    return names


def write_json(results: Results, path: Path) -> dict[str, Any]:
    """The results with their ratios and checks, written to ``path``; returned as a dict."""
    data = results.as_dict()
    data["ratios"] = report.ratios(data)
    data["checks"] = report.checks(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m transport_demo.bench",
        description="Latency, throughput and capacity of each transport, with bare "
        "baselines and peers measured in the same run.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument(
        "--only",
        type=lambda text: _names(text, (*ALL_SCENARIOS, *PRESETS), "scenario"),
        default=SCENARIOS,
        help=f"comma-separated scenarios (default: {','.join(SCENARIOS)}; also 'wire', the "
        f"bytes of one event at a time; 'http2' is {','.join(HTTP2_SCENARIOS)} on the HTTP/2 "
        "comparison's targets; 'webtransport' is "
        f"{','.join(WEBTRANSPORT_SCENARIOS)} on {' and '.join(WEBTRANSPORT)})",
    )
    parser.add_argument(
        "--targets",
        type=lambda text: _names(text, ALL_TARGETS, "target"),
        help="comma-separated targets (default: all but ours on Redis, the 'redis ...' and "
        "'redis-2 ...' targets, which start a Redis server for their run, and ours over TLS, "
        "the 'tls ...' and 'h2 ...' targets; with --only http2: "
        f"{','.join(HTTP2)}; with --only webtransport: {','.join(WEBTRANSPORT)})",
    )
    parser.add_argument("--steps", help="capacity steps, e.g. 1000,5000,10000")
    parser.add_argument(
        "--heartbeat",
        type=float,
        help="seconds between heartbeats, also the long-poll hold (default 5; the server's own "
        "defaults are 15 and 30)",
    )
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0.0,
        help="one-way delay of a shaped network between the clients and each server (a round "
        "trip costs twice this); capacity always runs on loopback",
    )
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="± this, per segment")
    parser.add_argument("--bandwidth-kbit", type=float, help="link rate each way, kbit/s")
    parser.add_argument(
        "--arrival",
        type=float,
        metavar="SECONDS",
        help="open each capacity step's connections within SECONDS (default: one heartbeat "
        "interval, a class arriving; e.g. 3 for a thundering herd)",
    )
    parser.add_argument("--json", type=Path, default=Path("artifacts/bench.json"))
    parser.add_argument("--markdown", type=Path, help="also write the tables here")
    parser.add_argument("--plots", type=Path, help="write bench-*.svg plots into this folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    for preset, (scenarios, targets) in PRESETS.items():
        if preset in args.only:  # a preset: its scenarios, and its targets unless named
            args.only = tuple(dict.fromkeys(s for s in (*args.only, *scenarios) if s != preset))
            args.targets = args.targets or targets
    args.targets = args.targets or TARGETS
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes.quick() if args.quick else Sizes()
    if args.steps:
        sizes = replace(sizes, steps=tuple(int(step) for step in args.steps.split(",")))
    if args.heartbeat:
        sizes = replace(sizes, heartbeat=args.heartbeat)
    network = None
    if args.delay_ms or args.jitter_ms or args.bandwidth_kbit:
        network = Conditions(
            delay_ms=args.delay_ms, jitter_ms=args.jitter_ms, bandwidth_kbit=args.bandwidth_kbit
        )
    if args.arrival:
        sizes = replace(sizes, arrival=args.arrival)
    steps = plan(args.only, args.targets, sizes)
    from tqdm import tqdm

    with tqdm(total=len(steps), unit="step", disable=args.no_progress, file=sys.stderr) as bar:

        def progress(label: str, results: Results) -> None:
            bar.set_postfix_str(label)
            bar.update()
            write_json(results, args.json)  # so far: an interrupted run keeps what it measured

        results = run(
            sizes, scenarios=args.only, targets=args.targets, progress=progress, network=network
        )
    data = write_json(results, args.json)
    tables = report.markdown(data)
    print(tables)
    print(f"JSON: {args.json}")
    if args.markdown:
        args.markdown.write_text(tables, encoding="utf-8")
    if args.plots:
        import matplotlib

        matplotlib.use("Agg")
        report.plot(data, args.plots)
        print(f"plots: {args.plots}/bench-*.svg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
