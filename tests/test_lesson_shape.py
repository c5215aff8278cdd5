"""The lessons have the shape every lesson gets (issue 12): what you will learn, prerequisites and
time; glossary links to agreed anchors; predictions whose answers are not in plain sight; one
pitfalls section per transport with no text shared between them; a recap; the teardown last."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ["01_long_polling.ipynb", "02_server_sent_events.ipynb"]
# Each transport's production pitfalls, in the notebook that has them (WebSocket's in 03b,
# WebTransport's in 07).
PITFALLS = [*LESSONS, "03b_websocket_in_practice.ipynb", "07_webtransport.ipynb"]
# Lessons with the same shape: WebSocket's two (no top-level await to explain) and 05 (no
# transport of its own).
SHAPED = [
    *LESSONS,
    "03_websocket.ipynb",
    "03b_websocket_in_practice.ipynb",
    "05_scaling_out.ipynb",
    "05b_security_lab.ipynb",
    "06_http2.ipynb",
    "07_webtransport.ipynb",
]

# The anchors of docs/glossary.md that every notebook links to (agreed between the lessons).
GLOSSARY = {
    "alpn",
    "asgi",
    "backoff-and-jitter",
    "backpressure",
    "browser-connection-limit",
    "chunked-transfer-encoding",
    "close-code",
    "certificate-hash",
    "cors",
    "datagram",
    "event-loop",
    "frame-and-message",
    "half-open-connection",
    "head-of-line-blocking",
    "heartbeat",
    "hpack",
    "http11-keep-alive",
    "http2-stream",
    "http3",
    "idle-timeout",
    "last-event-id",
    "long-polling",
    "masking",
    "nat",
    "origin",
    "p50-and-p99",
    "permessage-deflate",
    "proxy",
    "quic",
    "replay-buffer",
    "resume",
    "same-site-cookies",
    "seq",
    "server-sent-events",
    "short-polling",
    "tls",
    "websocket",
    "webtransport",
    "upgrade-handshake",
    "round-trip-time",
}


def markdown(name: str) -> list[str]:
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]


@pytest.mark.parametrize("name", SHAPED)
def test_the_beginner_shape(name: str) -> None:
    cells = markdown(name)
    text = "\n".join(cells)
    assert "**You will learn**" in cells[0] and "**Prerequisites:**" in cells[0]
    assert "**Time:**" in cells[0]
    assert "## Recap" in text
    if name in PITFALLS or name == "05_scaling_out.ipynb":
        assert "What goes wrong in production" in text
    if name in LESSONS:
        assert "nest_asyncio" in text  # explained where the first top-level await appears
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    assert "server.stop()" in notebook.cells[-1].source


@pytest.mark.parametrize("name", SHAPED)
def test_glossary_links_use_agreed_anchors(name: str) -> None:
    anchors = re.findall(r"\(\.\./docs/glossary\.md#([a-z0-9-]+)\)", "\n".join(markdown(name)))
    assert anchors and set(anchors) <= GLOSSARY, set(anchors) - GLOSSARY
    assert len(anchors) == len(set(anchors)), "link a term on its first use only"


@pytest.mark.parametrize("name", SHAPED)
def test_predictions_are_answered_out_of_sight(name: str) -> None:
    notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
    cells = notebook.cells
    for index, cell in enumerate(cells):
        if cell.cell_type == "markdown" and "Predict" in cell.source:
            after = next(c for c in cells[index + 1 :] if c.cell_type == "markdown").source
            assert "<details>" in after or "Predict" in after, cell.source[:80]


def test_the_pitfalls_are_each_transports_own() -> None:
    def pitfalls(name: str) -> set[str]:
        text = "\n".join(markdown(name)).split("What goes wrong in production", 1)[1]
        text = text.split("## Recap", 1)[0]
        return {line.strip() for line in text.splitlines() if len(line.strip()) > 30}

    each = {name: pitfalls(name) for name in PITFALLS}
    assert all(each.values())
    for first, second in itertools.combinations(PITFALLS, 2):
        assert not each[first] & each[second], (first, second, each[first] & each[second])
