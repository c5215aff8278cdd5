"""The WebTransport widget."""

from __future__ import annotations

from ..clients import WebTransportClient
from .client_widget import TransportWidget


class WebTransportWidget(TransportWidget):
    """A live WebTransport client in the kernel (aioquic, HTTP/3 over UDP): JSON lines both ways,
    heartbeats, resumes with last_seq. It reaches a server the kernel can reach over UDP, so it
    works where the page's own WebTransport cannot (behind jupyter-server-proxy)."""

    client_class = WebTransportClient
    title = "WebTransport"
