"""What a run's figures mean: ratios against the baselines and peers, the targets, Markdown
tables and plots. Works on the JSON a run writes (``Results.as_dict()``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..server.transports import TRANSPORTS, info

__all__ = [
    "COMPARISONS",
    "HTTP_VERSIONS",
    "checks",
    "http2_rows",
    "markdown",
    "network_label",
    "network_table",
    "plot",
    "plot_networks",
    "ratios",
    "webtransport_rows",
]

# Each transport of ours against: its bare same-stack baseline, the floor, the peers.
COMPARISONS: dict[str, dict[str, str]] = {
    "ours long-polling": {
        "same stack": "fastapi long-polling",
        "peer": "socketio polling",
    },
    "ours sse": {"same stack": "fastapi sse", "peer": "sse-starlette"},
    "ours websocket": {
        "same stack": "fastapi websocket",
        "floor": "websockets",
        "peer": "socketio websocket",
    },
}
SAME_STACK_LIMIT = 1.2  # ours may cost at most 20 % more than the bare endpoint
PEER_LIMIT = 1.0  # and must beat the peers
LAG_LIMIT_MS = 250.0
RSS_LIMIT_KIB = 20.0
CAPACITY_TARGET = 10_000  # connections the capacity targets are about

HTTP_VERSIONS = {
    "ours": "HTTP/1.1 (uvicorn)",
    "tls": "HTTP/1.1 + TLS (hypercorn)",
    "h2": "HTTP/2 + TLS (hypercorn)",
}
"""The HTTP/2 comparison's targets by their first word: what each speaks, and which server."""

LATENCIES = (("push", "p50_ms"), ("push", "p99_ms"), ("round_trip", "p50_ms"),
             ("round_trip", "p99_ms"))  # fmt: skip


def _ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 2) if theirs > 0 else None


def ratios(results: dict[str, Any], section: str = "latency") -> list[dict[str, Any]]:
    """One row per (ours, baseline) pair present in ``section``: ratio ours / theirs for each
    latency figure (below 1: ours is faster)."""
    data = results.get(section, {})
    rows = []
    for ours, against in COMPARISONS.items():
        for kind, theirs in against.items():
            if ours in data and theirs in results.get("latency", {}):
                row: dict[str, Any] = {"ours": ours, "kind": kind, "theirs": theirs}
                for scenario, figure in LATENCIES:
                    row[f"{scenario} {figure}"] = _ratio(
                        data[ours][scenario][figure], results["latency"][theirs][scenario][figure]
                    )
                rows.append(row)
    return rows


def checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue beside its figure: ``{"target", "value", "limit", "met"}``.

    ``met`` is ``None`` where the run was too small to judge the target (the capacity targets are
    about 10,000 connections: 20 connections meeting a lag goal says nothing about 10,000).
    """
    out: list[dict[str, Any]] = []
    for row in ratios(results):
        limit = PEER_LIMIT if row["kind"] == "peer" else SAME_STACK_LIMIT
        if row["kind"] == "floor":
            continue  # the floor is there to be looked at, not to be beaten
        for scenario, figure in LATENCIES:
            value = row[f"{scenario} {figure}"]
            if value is None:
                continue
            out.append({
                "target": f"{row['ours']} {scenario} {figure} / {row['theirs']}",
                "value": value,
                "limit": f"{'<' if row['kind'] == 'peer' else '≤'} {limit}",
                "met": value < limit if row["kind"] == "peer" else value <= limit,
            })  # fmt: skip
    for target, steps in results.get("capacity", {}).items():
        if not target.startswith(("ours", "redis")) or not steps:
            continue
        top = steps[-1]
        n = top["requested"]
        judged = n >= CAPACITY_TARGET or top["connections"] < n  # a saturated step is judged
        out.append({"target": f"{target} {n:,} connections: heartbeat lag p99 ms",
                    "value": top["lag_p99_ms"], "limit": f"< {LAG_LIMIT_MS:.0f}",
                    "met": (top["lag_p99_ms"] < LAG_LIMIT_MS and top["failed"] == 0
                            and top["silent"] == 0 and n >= CAPACITY_TARGET)
                    if judged else None})  # fmt: skip
        # (a run that stopped early at a saturated step has not met it at 10,000)
        out.append({"target": f"{target} {n:,} connections: server RSS per connection KiB",
                    "value": top["rss_per_connection_kib"], "limit": f"≤ {RSS_LIMIT_KIB:.0f}",
                    "met": top["rss_per_connection_kib"] <= RSS_LIMIT_KIB
                    if n >= CAPACITY_TARGET else None})  # fmt: skip
    return out


def _verdict(met: bool | None) -> str:
    if met is None:
        return f"not judged at this size (the goal is for {CAPACITY_TARGET:,})"
    return "yes" if met else "**no**"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            if abs(value) >= 100:
                return f"{value:,.0f}"
            return f"{value:.2f}" if abs(value) >= 0.1 or value == 0 else f"{value:.2g}"
        if isinstance(value, int):
            return f"{value:,}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def network_label(results: dict[str, Any]) -> str:
    """``loopback``, or the shaped network a run went through (``50 ms``, ``25±5 ms, …``)."""
    network = results.get("network") or {}
    shaped = network.get("delay_ms") or network.get("jitter_ms") or network.get("bandwidth_kbit")
    if not shaped:
        return "loopback"
    label = f"{network.get('delay_ms', 0):g}"
    if network.get("jitter_ms"):
        label += f"±{network['jitter_ms']:g}"
    label += " ms one way"
    if network.get("bandwidth_kbit") is not None:
        label += f", {network['bandwidth_kbit']:g} kbit/s"
    return label


def markdown(results: dict[str, Any], *, targets: bool = True) -> str:
    """All the tables of a run, as Markdown (``targets=False``: without the targets table)."""
    parts = []
    where = network_label(results)
    if where != "loopback":
        parts.append(f"*Clients reach the servers through a shaped network: {where}.*\n")
    latency = results.get("latency", {})
    if latency:
        parts.append("### Latency, server in its own process (ms)\n")
        parts.append(_table(
            ["target", "push p50", "push p95", "push p99", "round trip p50", "round trip p99"],
            [[t, v["push"]["p50_ms"], v["push"]["p95_ms"], v["push"]["p99_ms"],
              v["round_trip"]["p50_ms"], v["round_trip"]["p99_ms"]] for t, v in latency.items()],
        ))  # fmt: skip
    if results.get("thread"):
        parts.append("\n### Latency, our server in a background thread as in a notebook (ms)\n")
        parts.append(_table(
            ["target", "push p50", "push p95", "push p99", "round trip p50", "round trip p99"],
            [[t, v["push"]["p50_ms"], v["push"]["p95_ms"], v["push"]["p99_ms"],
              v["round_trip"]["p50_ms"], v["round_trip"]["p99_ms"]]
             for t, v in results["thread"].items()],
        ))  # fmt: skip
    rows = ratios(results)
    if rows:
        parts.append("\n### Ratios, ours / theirs (below 1: ours is faster)\n")
        parts.append(_table(
            ["ours", "against", "", *[f"{s} {f.removesuffix('_ms')}" for s, f in LATENCIES]],
            [[r["ours"], r["theirs"], r["kind"], *[r[f"{s} {f}"] for s, f in LATENCIES]]
             for r in rows],
        ))  # fmt: skip
    throughput = results.get("throughput", {})
    if throughput:
        parts.append("\n### Burst to one client\n")
        parts.append(_table(
            ["target", "messages", "msg/s", "bytes/msg", "requests/msg"],
            [[t, v["messages"], v["messages_per_second"], v["bytes_per_message"],
              v["requests_per_message"]] for t, v in throughput.items()],
        ))  # fmt: skip
    reconnect = results.get("reconnect", {})
    if reconnect:
        parts.append("\n### A cut, then the first message after it (ms)\n")
        parts.append(_table(
            ["target", "cuts", "p50", "max", "requests/reconnect", "lost", "doubled"],
            [[t, v["count"], v["p50_ms"], v["max_ms"], v["requests_per_reconnect"], v["lost"],
              v["doubled"]] for t, v in reconnect.items()],
        ))  # fmt: skip
    capacity = results.get("capacity", {})
    if capacity:
        parts.append("\n### Idle connections with heartbeats\n")
        parts.append(_table(
            ["target", "connections", "TCP", "failed", "silent", "server RSS MiB",
             "KiB/connection", "heartbeats", "lag p50 ms", "lag p99 ms", "lag max ms",
             "server GC max ms", "Redis MiB (KiB/connection)"],
            [[t, s["connections"], s.get("tcp_connections"), s["failed"], s["silent"],
              s["rss_mib"],
              s["rss_per_connection_kib"],
              s["heartbeats"], s["lag_p50_ms"], s["lag_p99_ms"], s["lag_max_ms"],
              s.get("server_gc_max_ms"),
              f"{s['store_rss_mib']:.1f} ({s['store_per_connection_kib']:.2f})"
              if s.get("store_rss_mib") else None]
             for t, steps in capacity.items() for s in steps],
        ))  # fmt: skip
        if any(s.get("grow_s") for steps in capacity.values() for s in steps):
            parts.append("\n### Idle connections: where the CPU went\n")
            parts.append(_table(
                ["target", "connections", "opening s", "server CPU s", "clients' CPU s",
                 "idle: server CPU %", "idle: clients' CPU %", "UDP drops"],
                [[t, s["connections"], s.get("grow_s"), s.get("grow_server_cpu_s"),
                  s.get("grow_client_cpu_s"), s.get("listen_server_cpu_pct"),
                  s.get("listen_client_cpu_pct"), s.get("udp_drops")]
                 for t, steps in capacity.items() for s in steps],
            ))  # fmt: skip
    wire = results.get("wire", {})
    if wire:
        parts.append("\n### One event at a time, bytes both ways\n")
        parts.append(_table(
            ["target", "spoke", "events", "on the socket", "above TLS", "requests/event",
             "per request, above TLS"],
            [[t, v["protocol"], v["events"], v["bytes_per_event"], v["http_bytes_per_event"],
              v["requests_per_event"], v["bytes_per_request"]] for t, v in wire.items()],
        ))  # fmt: skip
    versions = http2_rows(results)
    if versions:
        parts.append("\n### HTTP/2 beside HTTP/1.1\n")
        parts.append(_table(
            ["transport", "over", "push p50", "push p99", "round trip p50", "round trip p99",
             "bytes/event", "burst msg/s", "connections", "TCP", "KiB/connection",
             "lag p99 ms"], versions,
        ))  # fmt: skip
    beside = webtransport_rows(results)
    if beside:
        parts.append("\n### WebTransport beside WebSocket\n")
        parts.append(_table(
            ["transport", "push p50", "push p99", "round trip p50", "round trip p99",
             "bytes/event", "burst msg/s", "sessions", "failed", "KiB/session", "lag p99 ms",
             "idle server CPU %"], beside,
        ))  # fmt: skip
    found = checks(results) if targets else []
    if found:
        parts.append("\n### Targets\n")
        parts.append(_table(
            ["target", "figure", "goal", "met"],
            [[c["target"], c["value"], c["limit"], _verdict(c["met"])] for c in found],
        ))  # fmt: skip
    return "\n".join(parts) + "\n"


def http2_rows(results: dict[str, Any]) -> list[list[Any]]:
    """One row per transport and HTTP version of the HTTP/2 comparison present in ``results``:
    latency (ms), bytes per event on the socket, the burst's rate, and the capacity run's
    largest step (connections or streams, the TCP connections under them, server RSS per
    connection, heartbeat lag p99). Empty without a ``tls`` or ``h2`` target."""
    named = {t for section in ("latency", "wire", "capacity") for t in results.get(section, {})}
    if not any(t.split(" ", 1)[0] in ("tls", "h2") for t in named):
        return []
    rows = []
    for transport in TRANSPORTS:
        for how, label in HTTP_VERSIONS.items():
            target = f"{how} {transport.value}"
            if target not in named:
                continue
            latency = results.get("latency", {}).get(target, {})
            push, trip = latency.get("push", {}), latency.get("round_trip", {})
            wire = results.get("wire", {}).get(target, {})
            top = (results.get("capacity", {}).get(target) or [{}])[-1]
            rows.append([transport.value, label, push.get("p50_ms"), push.get("p99_ms"),
                         trip.get("p50_ms"), trip.get("p99_ms"), wire.get("bytes_per_event"),
                         results.get("throughput", {}).get(target, {})
                         .get("messages_per_second"),
                         top.get("connections"), top.get("tcp_connections"),
                         top.get("rss_per_connection_kib"), top.get("lag_p99_ms")])  # fmt: skip
    return rows


def webtransport_rows(results: dict[str, Any]) -> list[list[Any]]:
    """Our WebSocket and our WebTransport side by side, when ``results`` has WebTransport:
    latency (ms), bytes per event on the socket (TCP payload, or UDP payload: QUIC packets), the
    burst's rate, and the capacity run's largest step (sessions, failed opens, server RSS per
    session, heartbeat lag p99, the server's CPU share while they idled)."""
    pair = ("ours websocket", "ours webtransport")
    named = {t for section in ("latency", "wire", "capacity") for t in results.get(section, {})}
    if pair[1] not in named:
        return []
    rows = []
    for target in (t for t in pair if t in named):
        latency = results.get("latency", {}).get(target, {})
        push, trip = latency.get("push", {}), latency.get("round_trip", {})
        wire = results.get("wire", {}).get(target, {})
        top = (results.get("capacity", {}).get(target) or [{}])[-1]
        rows.append([info(target.removeprefix("ours ")).label, push.get("p50_ms"),
                     push.get("p99_ms"), trip.get("p50_ms"), trip.get("p99_ms"),
                     wire.get("bytes_per_event"),
                     results.get("throughput", {}).get(target, {}).get("messages_per_second"),
                     top.get("connections"), top.get("failed"),
                     top.get("rss_per_connection_kib"), top.get("lag_p99_ms"),
                     top.get("listen_server_cpu_pct")])  # fmt: skip
    return rows


def plot(results: dict[str, Any], directory: Path | None = None) -> list[Any]:
    """Bar charts of latency and throughput, lines of capacity. Saves ``bench-*.svg`` in
    ``directory`` when given; returns the figures."""
    import matplotlib.pyplot as plt

    figures = []
    latency = results.get("latency", {})
    if latency:
        names = list(latency)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        for axis, scenario in zip(axes, ("push", "round_trip"), strict=True):
            ys = range(len(names))
            axis.barh([y - 0.2 for y in ys], [latency[n][scenario]["p50_ms"] for n in names],
                      0.4, label="p50")  # fmt: skip
            axis.barh([y + 0.2 for y in ys], [latency[n][scenario]["p99_ms"] for n in names],
                      0.4, label="p99")  # fmt: skip
            axis.set_title(f"{scenario.replace('_', ' ')} latency (ms)")
            axis.set_yticks(list(ys), names)
            axis.invert_yaxis()
            axis.legend()
        fig.tight_layout()
        figures.append(("latency", fig))
    throughput = results.get("throughput", {})
    if throughput:
        names = list(throughput)
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        ys = range(len(names))
        axes[0].barh(list(ys), [throughput[n]["messages_per_second"] for n in names],
                     color="#27a55a")  # fmt: skip
        axes[0].set_xscale("log")
        axes[0].set_title("burst to one client (messages/s, log scale)")
        axes[1].barh(list(ys), [throughput[n]["bytes_per_message"] for n in names],
                     color="#9b59b6")  # fmt: skip
        axes[1].set_title("bytes on the wire per message")
        axes[0].set_yticks(list(ys), names)
        axes[0].invert_yaxis()
        fig.tight_layout()
        figures.append(("throughput", fig))
    capacity = results.get("capacity", {})
    if capacity:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
        for name, steps in capacity.items():
            xs = [s["connections"] for s in steps]
            style = "-o" if name.startswith("ours") else "--."
            axes[0].plot(xs, [s["lag_p99_ms"] for s in steps], style, label=name)
            axes[1].plot(xs, [s["rss_per_connection_kib"] for s in steps], style, label=name)
        axes[0].axhline(LAG_LIMIT_MS, color="grey", lw=0.8)
        axes[0].set_title("heartbeat lag p99 (ms)")
        axes[0].set_yscale("log")
        axes[1].axhline(RSS_LIMIT_KIB, color="grey", lw=0.8)
        axes[1].set_title("server RSS per connection (KiB)")
        for axis in axes:
            axis.set_xlabel("idle connections")
        axes[1].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        figures.append(("capacity", fig))
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        for name, fig in figures:
            fig.savefig(directory / f"bench-{name}.svg", metadata={"Date": None})
    return [fig for _, fig in figures]


def network_table(runs: list[dict[str, Any]]) -> str:
    """One Markdown table per network: each of our transports' push and round-trip latency and
    the time from a cut to the next message (runs as written by ``Results.as_dict()``)."""
    parts = []
    for results in runs:
        parts.append(f"\n#### {network_label(results)}\n")
        rows = []
        for target in (f"ours {transport.value}" for transport in TRANSPORTS):
            latency = results.get("latency", {}).get(target)
            cut = results.get("reconnect", {}).get(target)
            if latency is None and cut is None:
                continue
            push = (latency or {}).get("push", {})
            trip = (latency or {}).get("round_trip", {})
            rows.append([target.removeprefix("ours "), push.get("p50_ms"), push.get("p99_ms"),
                         trip.get("p50_ms"), trip.get("p99_ms"),
                         (cut or {}).get("p50_ms")])  # fmt: skip
        parts.append(_table(
            ["transport", "push p50", "push p99", "round trip p50", "round trip p99",
             "cut → next message p50"], rows,
        ))  # fmt: skip
    return "\n".join(parts).lstrip("\n") + "\n"


def plot_networks(runs: list[dict[str, Any]], path: Path | None = None) -> Any:
    """One panel per figure (push, round trip, cut → next message), one group of bars per
    network, the transports side by side in each; log axis (loopback's tenths of a
    millisecond and a continent's hundreds on one scale). Saved to ``path`` when given."""
    import matplotlib.pyplot as plt

    transports = tuple(transport.value for transport in TRANSPORTS)
    colours = {transport.value: row.colour for transport, row in TRANSPORTS.items()}
    panels = (("push", "push latency p50 (bar) and p99 (tick)"),
              ("round_trip", "round trip p50 (bar) and p99 (tick)"),
              ("reconnect", "cut → next message, p50"))  # fmt: skip
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharey=True)
    width = 0.8 / len(transports)  # the table's transports side by side in each group
    for axis, (key, title) in zip(axes, panels, strict=True):
        for i, transport in enumerate(transports):
            target = f"ours {transport}"
            p50s: list[float] = []
            p99s: list[float | None] = []
            for results in runs:
                if key == "reconnect":
                    figure = results.get("reconnect", {}).get(target, {})
                    p50s.append(figure.get("p50_ms", 0.0))
                    p99s.append(None)
                else:
                    figure = results.get("latency", {}).get(target, {}).get(key, {})
                    p50s.append(figure.get("p50_ms", 0.0))
                    p99s.append(figure.get("p99_ms"))
            xs = [n + (i - (len(transports) - 1) / 2) * width for n in range(len(runs))]
            axis.bar(xs, p50s, width, color=colours[transport], label=transport)
            ticks = [(x, p) for x, p in zip(xs, p99s, strict=True) if p is not None]
            if ticks:
                axis.scatter([x for x, _ in ticks], [p for _, p in ticks], marker="_", s=200,
                             color="black", zorder=3)  # fmt: skip
        axis.set_xticks(range(len(runs)), [network_label(r) for r in runs], fontsize=8)
        axis.set_yscale("log")
        axis.set_title(title, fontsize=10)
        axis.grid(axis="y", which="major", alpha=0.3)
    axes[0].set_ylabel("milliseconds (log scale)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, metadata={"Date": None})
    return fig
