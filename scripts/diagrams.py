"""Draws the notebooks' pictures into docs/images/*.svg: one sequence diagram per transport and the
architecture. Run: .venv/bin/python scripts/diagrams.py
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("svg")
import matplotlib.pyplot as plt

OUT = Path(__file__).resolve().parent.parent / "docs" / "images"
COLOURS = {"→": "#2f7de1", "←": "#27a55a", "⇢": "#9b59b6", "×": "#d93025"}

# (direction, label): "→" client to server, "←" server to client, "⇢" server to client, a
# heartbeat, "×" a cut, "note" a remark across both lifelines.
Step = tuple[str, str]

DIAGRAMS: dict[str, tuple[str, list[Step]]] = {
    "long_polling": (
        "HTTP long polling",
        [
            ("→", "POST /poll {}"),
            ("←", '200 {"type": "connected", "connection_id": C}'),
            ("→", "POST /poll {connection_id: C, last_seq: 0}"),
            ("note", "held … nothing arrives within poll_timeout"),
            ("←", '200 {"type": "timeout"}'),
            ("→", "POST /poll {connection_id: C, last_seq: 0}"),
            ("note", "held … hub.publish(C, 'hi') → seq 1"),
            ("←", '200 {"type": "message", "messages": [seq 1]}'),
            ("→", "POST /poll {connection_id: C, last_seq: 1}   (acknowledges 1)"),
            ("note", "a lost answer? poll again with the same last_seq: it comes again"),
        ],
    ),
    "sse": (
        "Server-Sent Events",
        [
            ("→", "GET /sse   (Accept: text/event-stream)"),
            ("←", "200 text/event-stream · retry: 1000"),
            ("←", "data: {connected, C}   id: C:0"),
            ("⇢", "data: {heartbeat, count 1}"),
            ("→", "POST /sse/message {connection_id: C, text}   (a separate request)"),
            ("←", "data: {message, seq 1}   id: C:1"),
            ("×", "the connection drops"),
            ("→", "GET /sse   Last-Event-ID: C:1   (EventSource retries by itself)"),
            ("←", "data: {connected, resumed}, then every event after seq 1"),
        ],
    ),
    "websocket": (
        "WebSocket",
        [
            ("→", "GET /ws  Upgrade: websocket · Sec-WebSocket-Key · Origin"),
            ("←", "101 Switching Protocols · Sec-WebSocket-Accept"),
            ("←", "{connected, C}"),
            ("→", '{"message": "hi"}'),
            ("←", "{user_message, seq 1, 'hi'}"),
            ("⇢", "{heartbeat, count 1}"),
            ("×", "the connection drops (1006)"),
            ("→", "GET /ws?connection_id=C&last_seq=1 → 101"),
            ("←", "{connected, resumed}, then every event after seq 1"),
            ("→", "close 1000 (normal)"),
        ],
    ),
}


def sequence(name: str, title: str, steps: list[Step]) -> Path:
    height = 1.2 + 0.52 * len(steps)
    fig, ax = plt.subplots(figsize=(8.6, height))
    ax.set_xlim(0, 10)
    ax.set_ylim(-len(steps) - 0.6, 1.1)
    ax.axis("off")
    left, right = 1.3, 8.7
    for x, label in ((left, "client"), (right, "server")):
        ax.text(
            x,
            0.75,
            label,
            ha="center",
            va="center",
            fontsize=12,
            weight="bold",
            bbox={"boxstyle": "round", "fc": "#eef3fc", "ec": "#314a7a"},
        )
        ax.plot([x, x], [0.4, -len(steps) - 0.4], color="#9aa3b5", lw=1, ls="--")
    for i, (kind, label) in enumerate(steps, start=1):
        y = -i + 0.2
        if kind == "note":
            ax.text(
                5,
                y,
                label,
                ha="center",
                va="center",
                fontsize=9,
                style="italic",
                color="#5d6677",
                bbox={"fc": "#fffbe6", "ec": "#e0c36a", "boxstyle": "round"},
            )
            continue
        if kind == "×":
            ax.text(
                5,
                y,
                "✕  " + label,
                ha="center",
                va="center",
                fontsize=10,
                color=COLOURS["×"],
                weight="bold",
            )
            continue
        start, end = (left, right) if kind == "→" else (right, left)
        ax.annotate(
            "",
            xy=(end, y - 0.12),
            xytext=(start, y - 0.12),
            arrowprops={
                "arrowstyle": "-|>",
                "color": COLOURS[kind],
                "lw": 1.6,
                "ls": "--" if kind == "⇢" else "-",
            },
        )
        ax.text(5, y + 0.06, label, ha="center", va="bottom", fontsize=9, color="#1d2330")
    ax.set_title(title, fontsize=13, weight="bold")
    path = OUT / f"{name}.svg"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def architecture() -> Path:
    fig, ax = plt.subplots(figsize=(9, 4.4))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 5)
    ax.axis("off")

    def box(x: float, y: float, w: float, h: float, text: str, colour: str) -> None:
        ax.add_patch(plt.Rectangle((x, y), w, h, fc=colour, ec="#314a7a", lw=1.2))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=9)

    ax.add_patch(plt.Rectangle((0.2, 0.2), 4.6, 4.6, fc="none", ec="#9aa3b5", ls="--"))
    ax.text(2.5, 4.55, "Jupyter kernel (one process)", ha="center", fontsize=10, weight="bold")
    box(0.5, 3.2, 4.0, 1.0, "notebook thread: your cells\nserver.hub.publish(...)", "#fff6ec")
    box(0.5, 1.6, 1.9, 1.2, "server thread\nuvicorn + FastAPI\n(own event loop)", "#eef3fc")
    box(2.6, 1.6, 1.9, 1.2, "hub\nconnections · seq\nreplay · limits", "#d3f3dc")
    box(
        0.5,
        0.4,
        4.0,
        0.9,
        "widgets thread: LongPoll / SSE / WebSocket\nclients (own event loop)",
        "#f3e8fa",
    )
    box(6.0, 3.3, 3.6, 0.9, "POST /poll   (long polling)", "#eef3fc")
    box(6.0, 2.1, 3.6, 0.9, "GET /sse + POST /sse/message", "#eef3fc")
    box(6.0, 0.9, 3.6, 0.9, "/ws   (WebSocket)", "#eef3fc")
    ax.text(7.8, 4.55, "routers (one per transport)", ha="center", fontsize=10, weight="bold")
    for y in (3.75, 2.55, 1.35):
        ax.annotate(
            "",
            xy=(4.5, 2.2),
            xytext=(6.0, y),
            arrowprops={"arrowstyle": "<|-|>", "color": "#314a7a"},
        )
    ax.annotate("", xy=(3.5, 2.8), xytext=(3.5, 3.2), arrowprops={"arrowstyle": "-|>"})
    ax.text(7.8, 0.35, "browser: client.html at /", ha="center", fontsize=9, style="italic")
    path = OUT / "architecture.svg"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (title, steps) in DIAGRAMS.items():
        print(sequence(name, title, steps))
    print(architecture())


if __name__ == "__main__":
    main()
