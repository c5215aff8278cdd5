"""The SSE client: ``GET /sse`` parsed with httpx-sse, resumed with ``Last-Event-ID``."""

from __future__ import annotations

import json
from typing import Any

import httpx
from httpx_sse import SSEError, aconnect_sse

from ..server.protocol import Transport
from .base import (
    BaseClient,
    ClientError,
    DroppedByClient,
    error_from_response,
    http_client,
    http_timeout,
    should_retry,
)


class SSEClient(BaseClient):
    """Reads the event stream and resumes with ``Last-Event-ID: <connection_id>:<last_seq>`` after
    any cut, as a browser's EventSource does. ``heartbeat_timeout`` is the longest silence taken as
    alive (a half-open connection shows up as silence): keep it above the server's heartbeat
    interval. Sending is ``POST /sse/message``.
    """

    transport = Transport.SSE

    def __init__(self, base_url: str, *, heartbeat_timeout: float = 45.0, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.heartbeat_timeout = heartbeat_timeout
        self._http = http_client(
            self.base_url,
            http_timeout(heartbeat_timeout, self.connect_timeout),
            http2=self.http2,
            verify=self.verify,
        )

    async def _run(self) -> None:
        while not self.closed:
            try:
                outcome = await self._attempt(self._read_stream())
            except (httpx.TransportError, SSEError, ValueError, DroppedByClient) as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            if outcome is None:
                return
            await self._retry_later(outcome)

    async def _read_stream(self) -> str | None:
        """One stream, until it ends: a reason to retry, or ``None`` to stop."""
        headers = {}
        if self.connection_id is not None:
            headers["Last-Event-ID"] = f"{self.connection_id}:{self.last_seq}"
        self.stats.requests += 1
        async with aconnect_sse(self._http, "GET", "/sse", headers=headers) as source:
            response = source.response
            self.http_version = response.http_version
            if response.status_code != 200:
                error = error_from_response(response.status_code, await response.aread())
                if not should_retry(response.status_code, error.code):
                    self._give_up(error.code, error.detail)
                    return None
                return f"{error.code}: {error.detail}"
            async for sse in source.aiter_sse():
                if sse.data:
                    self._handle(json.loads(sse.data))
        return "the server ended the stream"

    async def send(self, text: str) -> None:
        """``POST /sse/message``; the echo arrives on the stream."""
        connection_id = self._check_can_send()
        self.stats.requests += 1
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
