"""The WebSocket client (the ``websockets`` library), resumed with ``?connection_id=&last_seq=``."""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ..server.protocol import CloseCode, Transport
from ..server.urls import endpoint_url
from .base import BaseClient, ClientError, error_from_response, should_retry


class WebSocketClient(BaseClient):
    """Connects to ``/ws``; after any cut it reconnects with backoff and resumes. ``ping_interval``
    and ``ping_timeout`` (websockets' keepalive) notice a half-open connection. ``origin`` is sent
    as the handshake's Origin header (a browser always sends one; the server checks it).
    """

    transport = Transport.WEBSOCKET

    def __init__(
        self,
        base_url: str,
        *,
        origin: str | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_frame: int = 1 << 20,
        **options: Any,
    ) -> None:
        super().__init__(base_url, **options)
        self.origin = origin
        self.ping_interval, self.ping_timeout = ping_interval, ping_timeout
        self.max_frame = max_frame
        self._ws: ClientConnection | None = None
        self.close_code: int | None = None  # the code of the last closing handshake we sent/saw

    def _tls(self) -> dict[str, Any]:
        """``ssl=`` for a wss:// URL, from ``verify`` as httpx reads it."""
        if not self.base_url.startswith("https"):
            return {}
        if isinstance(self.verify, ssl.SSLContext):
            return {"ssl": self.verify}
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return {"ssl": context}

    def _url(self) -> str:
        query = ""
        if self.connection_id is not None:
            query = urlencode({"connection_id": self.connection_id, "last_seq": self.last_seq})
        return endpoint_url(self.base_url, "/ws", query, websocket=True)

    async def _run(self) -> None:
        while not self.closed:
            self.stats.requests += 1
            try:
                async with connect(
                    self._url(),
                    origin=self.origin,  # type: ignore[arg-type]
                    open_timeout=self.connect_timeout,
                    ping_interval=self.ping_interval,
                    ping_timeout=self.ping_timeout,
                    max_size=self.max_frame,
                    close_timeout=2,
                    **self._tls(),
                ) as ws:
                    self._ws = ws
                    self.http_version = "HTTP/1.1"  # websockets speaks RFC 6455's upgrade only
                    async for frame in ws:
                        self._handle(json.loads(frame))
                code = ws.close_code
                reason = f"closed by the server ({code})"
            except InvalidStatus as exc:
                status = exc.response.status_code
                error = error_from_response(status, bytes(exc.response.body or b""))
                if not should_retry(status, error.code):
                    self._give_up(error.code, error.detail)
                    return
                code, reason = None, f"{error.code}: {error.detail}"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = f"connection lost ({code})"
                if code in (CloseCode.POLICY_VIOLATION, CloseCode.MESSAGE_TOO_BIG):
                    # The server refused what this client sent: reconnecting would not fix it.
                    self._give_up(f"close_{code}", exc.rcvd.reason if exc.rcvd else "")
                    return
            except (OSError, InvalidHandshake, TimeoutError, ValueError) as exc:
                code, reason = None, f"{type(exc).__name__}: {exc}"
            finally:
                self._ws = None
            if not await self._after_socket(code, reason):
                return

    async def send(self, text: str) -> None:
        """Send ``{"message": text}``; the echo (``user_message``) arrives on the socket."""
        self._check_can_send()
        ws = self._ws
        if ws is None:
            raise ClientError("not_connected", "The socket is not open (yet, or any more).")
        try:
            await ws.send(json.dumps({"message": text}, ensure_ascii=False))
        except ConnectionClosed as exc:
            raise ClientError("not_connected", f"The socket closed: {exc}") from exc

    async def drop_connection(self) -> None:
        """Abort the TCP connection (no closing handshake): the server sees 1006, we resume."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def _close_socket(self) -> None:
        ws = self._ws
        if ws is not None:
            await ws.close(CloseCode.NORMAL, "client closed")
            self.close_code = ws.close_code
