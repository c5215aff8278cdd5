"""The docs hold together: the glossary has the agreed entries, every link into it — from any
notebook, any page under docs/ or the README — lands on one of its headings, and every relative link
points at a file that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GLOSSARY = ROOT / "docs" / "glossary.md"

# The entries the notebooks link to (anchor: heading). "SameSite cookies" would be
# `samesite-cookies` on GitHub; the agreed anchor `same-site-cookies` is an explicit id before it.
ENTRIES = {
    "alpn": "ALPN",
    "asgi": "ASGI",
    "backoff-and-jitter": "Backoff and jitter",
    "backpressure": "Backpressure",
    "browser-connection-limit": "Browser connection limit",
    "certificate-hash": "Certificate hash",
    "chunked-transfer-encoding": "Chunked transfer encoding",
    "close-code": "Close code",
    "cors": "CORS",
    "datagram": "Datagram",
    "event-loop": "Event loop",
    "frame-and-message": "Frame and message",
    "half-open-connection": "Half-open connection",
    "head-of-line-blocking": "Head-of-line blocking",
    "heartbeat": "Heartbeat",
    "hpack": "HPACK",
    "http11-keep-alive": "HTTP/1.1 keep-alive",
    "http2-stream": "HTTP/2 stream",
    "http3": "HTTP/3",
    "idle-timeout": "Idle timeout",
    "last-event-id": "Last-Event-ID",
    "long-polling": "Long polling",
    "masking": "Masking",
    "nat": "NAT",
    "origin": "Origin",
    "p50-and-p99": "p50 and p99",
    "permessage-deflate": "permessage-deflate",
    "proxy": "Proxy",
    "quic": "QUIC",
    "replay-buffer": "Replay buffer",
    "resume": "Resume",
    "same-site-cookies": "SameSite cookies",
    "seq": "seq",
    "server-sent-events": "Server-Sent Events",
    "short-polling": "Short polling",
    "tls": "TLS",
    "websocket": "WebSocket",
    "webtransport": "WebTransport",
    "upgrade-handshake": "Upgrade handshake",
    "round-trip-time": "Round-trip time",
}

# A Markdown link whose target names the glossary: (path)#(anchor). Also matches the HTML form.
LINK = re.compile(r"""[(\"']([^()\s\"']*glossary\.md)#([^)\s\"']*)[)\"']""")


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path: Path) -> list[str]:
    return [line[4:].strip() for line in path.read_text().splitlines() if line.startswith("### ")]


def glossary_anchors() -> set[str]:
    """The headings' anchors, and the explicit ``<a id="…">`` ones."""
    text = GLOSSARY.read_text()
    return {anchor(h) for h in headings(GLOSSARY)} | set(re.findall(r'<a id="([^"]+)"', text))


def linking_texts() -> list[tuple[Path, str]]:
    """(file, text) for every notebook (all its cells) and every Markdown page that may link."""
    texts = []
    for path in sorted((ROOT / "notebooks").rglob("*.ipynb")):
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue  # .ipynb_checkpoints: JupyterLab's copies, not the repository's
        cells = json.loads(path.read_text())["cells"]
        texts.append((path, "\n".join("".join(cell["source"]) for cell in cells)))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        if any(part.startswith(".") for part in path.relative_to(ROOT).parts):
            continue
        texts.append((path, path.read_text()))
    return texts


def test_anchor_follows_github() -> None:
    assert anchor("HTTP/1.1 keep-alive") == "http11-keep-alive"
    assert anchor("p50 and p99") == "p50-and-p99"
    assert anchor("Last-Event-ID") == "last-event-id"
    assert anchor("Server-Sent Events") == "server-sent-events"


def test_the_glossary_has_exactly_the_agreed_entries() -> None:
    found = headings(GLOSSARY)
    assert sorted(found) == sorted(ENTRIES.values())
    assert len(set(found)) == len(found), "a heading appears twice"
    assert set(ENTRIES) <= glossary_anchors()
    for name, heading in ENTRIES.items():  # each anchor sits on its own heading
        before_heading = GLOSSARY.read_text().split(f"\n### {heading}\n", 1)[0]
        assert anchor(heading) == name or before_heading.rstrip().endswith(f'<a id="{name}"></a>')


def test_every_entry_says_something() -> None:
    text = GLOSSARY.read_text()
    for heading in ENTRIES.values():
        body = text.split(f"### {heading}\n", 1)[1].split("\n### ", 1)[0]
        assert len(body.split()) >= 25, f"{heading}: too short to teach anything"


def test_the_checker_catches_a_broken_link() -> None:
    broken = "see [NAT](../docs/glossary.md#nats) and [CORS](../docs/glossary.md#cors)"
    anchors = [found for _, found in LINK.findall(broken)]
    assert anchors == ["nats", "cors"]
    assert [a for a in anchors if a not in glossary_anchors()] == ["nats"]


TEXTS = linking_texts()


@pytest.mark.parametrize(("path", "text"), TEXTS, ids=[str(p.relative_to(ROOT)) for p, _ in TEXTS])
def test_every_glossary_link_resolves(path: Path, text: str) -> None:
    anchors = glossary_anchors()
    for target, name in LINK.findall(text):
        if target.startswith(("http:", "https:")):
            continue
        assert (path.parent / target).resolve() == GLOSSARY, f"{target} is not docs/glossary.md"
        assert name in anchors, f"{path.name}: glossary.md#{name} has no heading"


def test_links_inside_the_glossary_resolve() -> None:
    anchors = glossary_anchors()
    for name in re.findall(r"\]\(#([^)\s]+)\)", GLOSSARY.read_text()):
        assert name in anchors, f"#{name} has no heading"


def without_code(text: str) -> str:
    """Markdown without fenced blocks and inline code spans, where a link is only an example."""
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize(("path", "text"), TEXTS, ids=[str(p.relative_to(ROOT)) for p, _ in TEXTS])
def test_every_relative_link_resolves(path: Path, text: str) -> None:
    """Links to other notebooks, pages and pictures point at files that exist."""
    for target in re.findall(r"\]\(([^)\s]+)\)", without_code(text)):
        file = target.split("#", 1)[0]
        if not file or re.match(r"^[a-z]+:", file):  # an anchor on the page, or a URL
            continue
        assert (path.parent / file).exists(), f"{path.name}: {target} does not exist"


def test_the_link_checker_sees_a_missing_file() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", without_code("[a](nowhere.md) `[b](in-code.md)`"))
    assert links == ["nowhere.md"]
    assert not (ROOT / "docs" / links[0]).exists()
