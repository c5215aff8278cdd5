"""Security defaults not covered elsewhere (Origin: test_websocket.py; CORS, ids in /stats and
logs, body limits: test_http.py; XSS: test_client_page.py and test_widgets.py)."""

from __future__ import annotations

import socket

import pytest

from transport_demo import Settings, start_server
from transport_demo.__main__ import parse_args


def test_default_bind_is_loopback_only() -> None:
    assert Settings().host == "127.0.0.1"
    assert parse_args([]).host is None  # the command line falls back to the same default
    server = start_server(port=0)
    try:
        assert server.host == "127.0.0.1"
        addresses = [
            a for a in socket.getaddrinfo(socket.gethostname(), None) if a[0] == socket.AF_INET
        ]
        outside = {a[4][0] for a in addresses} - {"127.0.0.1", "127.0.1.1"}
        for address in outside:  # not reachable on the machine's other addresses
            with pytest.raises(OSError), socket.create_connection((address, server.port), 1):
                pass
    finally:
        server.stop()


def test_frame_limit_is_bounded_by_the_text_limit() -> None:
    settings = Settings(max_message_bytes=1000)
    assert settings.max_envelope_bytes == 6 * 1000 + 1024
    assert Settings().max_envelope_bytes < 1024 * 1024  # far below uvicorn's 16 MiB default
