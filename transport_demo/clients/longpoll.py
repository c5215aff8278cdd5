"""The long-polling client: a loop of ``POST /poll`` with ``last_seq``, and ``send`` as a poll."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from ..server.protocol import ClientNote, ClientState, EndReason, ErrorCode, EventType, Transport
from .base import (
    BaseClient,
    ClientError,
    Event,
    error_from_response,
    http_client,
    http_timeout,
    should_retry,
)


class LongPollClient(BaseClient):
    """Polls ``POST /poll`` with ``last_seq`` (so a lost answer is sent again) and reconnects with
    backoff on network errors and 5xx. When its connection has expired (404
    ``unknown_connection``) it starts a new one, as the contract documents, and says so with a
    ``new_connection`` event.
    """

    transport = Transport.LONG_POLLING

    def __init__(self, base_url: str, *, read_margin: float = 10.0, **options: Any) -> None:
        super().__init__(base_url, **options)
        self.poll_timeout = 30.0
        self.read_margin = read_margin
        self._http = http_client(
            self.base_url, self._timeout(), http2=self.http2, verify=self.verify
        )
        self._send_idle = asyncio.Event()
        self._send_idle.set()
        self._send_lock = asyncio.Lock()
        self._poll: asyncio.Future[Event] | None = None
        self._dropping = False

    def _timeout(self) -> httpx.Timeout:
        # The read waits out the server's hold, which the connected event may have changed.
        return http_timeout(self.poll_timeout + self.read_margin, self.connect_timeout)

    async def _post(self, body: dict[str, Any]) -> Event:
        self.stats.requests += 1
        response = await self._http.post("/poll", json=body, timeout=self._timeout())
        self.http_version = response.http_version
        if response.status_code >= 500:
            raise httpx.HTTPStatusError("server error", request=response.request, response=response)
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.content)
        return dict(response.json())

    async def _run(self) -> None:
        while not self.closed:
            # A send may start between this wake-up and the poll: check again, with no await
            # between the check and creating the poll, so a send always sees it and cancels it.
            while not self._send_idle.is_set():
                await self._send_idle.wait()
            try:
                if self.connection_id is None:
                    answer = await self._post({})
                    self.poll_timeout = float(answer.get("poll_timeout", self.poll_timeout))
                    self._handle(answer)
                    continue
                if not self._reconnecting:
                    self.state = ClientState.WAITING
                self._poll = asyncio.ensure_future(
                    self._post({"connection_id": self.connection_id, "last_seq": self.last_seq})
                )
                try:
                    answer = await self._poll
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._poll.cancelled() and task is not None and not task.cancelling():
                        if self._dropping:
                            self._dropping = False
                            await self._retry_later("the poll was cut on purpose")
                        continue  # else a send took the poll's place: its answer has the events
                    raise
            except ClientError as exc:
                if exc.code == ErrorCode.UNKNOWN_CONNECTION:
                    self._note(
                        ClientNote.NEW_CONNECTION, detail="The connection expired on the server."
                    )
                    self.connection_id = None
                    self.last_seq = 0
                    continue
                if not should_retry(exc.status, exc.code):
                    self._give_up(exc.code, exc.detail)
                    return
                await self._retry_later(exc.code)
                continue
            except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
                await self._retry_later(f"{type(exc).__name__}: {exc}")
                continue
            self._take(answer)
            if (
                answer.get("type") == EventType.TIMEOUT
                and answer.get("reason") == EndReason.SHUTDOWN
            ):
                await self._retry_later("server shutting down")

    def _take(self, answer: Event) -> None:
        if self._reconnecting or self.state != ClientState.OPEN:
            self.state = ClientState.OPEN
            if self._reconnecting:
                self._reconnecting = False
                self.backoff.reset()
                self._note(ClientNote.RECONNECTED, connection_id=self.connection_id)
        if answer.get("type") == EventType.MESSAGE:
            for event in answer.get("messages", []):
                self._handle(event)
        else:
            self._handle(answer)

    async def send(self, text: str) -> None:
        """Send ``text``; its echo comes back in this request's answer and is handled there.

        The server treats a send as the connection's poll (it ends the held one), so the client
        does too: it cancels its held poll, sends, takes the answer (everything after
        ``last_seq``), and only then polls again. With a poll and a send in flight together, an
        event could come back on both and show up as a duplicate.
        """
        connection_id = self._check_can_send()
        async with self._send_lock:
            self._send_idle.clear()
            if self._poll is not None and not self._poll.done():
                self._poll.cancel()
            try:
                answer = await self._post(
                    {"connection_id": connection_id, "text": text, "last_seq": self.last_seq}
                )
                self._take(answer)
            except httpx.TransportError as exc:
                raise ClientError("network_error", str(exc)) from exc
            except httpx.HTTPStatusError as exc:
                raise ClientError(f"http_{exc.response.status_code}", "server error") from exc
            finally:
                self._send_idle.set()

    async def drop_connection(self) -> None:
        """Cut the held poll: its answer is lost on the way; the next poll gets it again."""
        if self._poll is not None and not self._poll.done():
            self._dropping = True
            self._poll.cancel()

    async def _release(self) -> None:
        await self._http.aclose()
