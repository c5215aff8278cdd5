"""The SSE client: ``GET /sse`` parsed with httpx-sse, resumed with ``Last-Event-ID``."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from .base import BaseClient, ClientError, error_from_response, http_timeout


class SSEClient(BaseClient):
    """Reads the event stream and resumes with ``Last-Event-ID: <connection_id>:<last_seq>`` after
    any cut, as a browser's EventSource does. ``heartbeat_timeout`` is the longest silence taken as
    alive (a half-open connection shows up as silence): keep it above the server's heartbeat
    interval. Sending is ``POST /sse/message``.
    """

    transport = "sse"

    def __init__(self, base_url: str, *, heartbeat_timeout: float = 45.0, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.heartbeat_timeout = heartbeat_timeout
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=http_timeout(heartbeat_timeout, self.connect_timeout)
        )

    async def _run(self) -> None:
        while not self.closed:
            headers = {}
            if self.connection_id is not None:
                headers["Last-Event-ID"] = f"{self.connection_id}:{self.last_seq}"
            try:
                async with aconnect_sse(self._http, "GET", "/sse", headers=headers) as source:
                    response = source.response
                    if response.status_code != 200:
                        body = await response.aread()
                        error = error_from_response(response.status_code, body)
                        if response.status_code < 500 and error.code != "too_many_connections":
                            self._give_up(error.code, error.detail)
                            return
                        await self._retry_later(f"{error.code}: {error.detail}")
                        continue
                    async for sse in source.aiter_sse():
                        if sse.data:
                            self._handle(json.loads(sse.data))
                reason = "the server ended the stream"
            except (httpx.TransportError, SSEError, ValueError) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            await self._retry_later(reason)

    async def send(self, text: str) -> None:
        """``POST /sse/message``; the echo arrives on the stream."""
        connection_id = self._check_can_send()
        try:
            response = await self._http.post(
                "/sse/message", json={"connection_id": connection_id, "text": text}
            )
        except httpx.TransportError as exc:
            raise ClientError("network_error", str(exc)) from exc
        if response.status_code != 200:
            raise error_from_response(response.status_code, response.content)

    async def _release(self) -> None:
        await self._http.aclose()
