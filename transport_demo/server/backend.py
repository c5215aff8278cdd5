"""The interface the routers, the app and the launcher use: one for every place connections live.

:class:`~transport_demo.server.hub.Hub` keeps them in this process's memory (the default, the fast
path);
:class:`~transport_demo.server.redis_hub.RedisHub` keeps them in Redis, so that several server
processes
act as one (docs/scaling.md). Both satisfy :class:`Backend`; the routers never know which they
talk to. Operations that may wait on a shared store are coroutines; the memory hub's finish at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from .protocol import EndReason, Transport
from .settings import Settings

if TYPE_CHECKING:
    from .waiters import Outgoing

__all__ = ["AttachedStream", "Backend", "make_hub"]


class AttachedStream(Protocol):
    """An SSE or WebSocket stream attached to a connection (what ``aopen_stream`` returns)."""

    @property
    def connection_id(self) -> str: ...

    ended: EndReason | None
    on_superseded: Callable[[], None] | None
    """Called once when another stream takes the connection over (the router sets it: it resets
    the socket if its client leaves what was written unread, socket_guard.abort_unread)."""

    def batches(self) -> AsyncIterator[list[Outgoing]]: ...

    async def areceive(self, text: str) -> int: ...

    def send_error(self, code: str, detail: str) -> bool: ...

    async def aclose(self) -> None: ...


class Backend(Protocol):
    """What the routers, ``/stats`` and the launcher call on ``app.state.hub``.

    One naming rule: an operation that is a coroutine starts with ``a`` (``apoll``,
    ``areceive``, …); an unprefixed one is synchronous and may be called from any thread (a
    notebook's: ``publish``, ``broadcast``, ``stats``, ``disconnect_all``). ``start`` and
    ``close`` are the server's life cycle, awaited on its loop."""

    settings: Settings

    async def start(self) -> None: ...

    async def close(self, timeout: float = 0.5) -> None: ...

    async def aconnect_long_poll(self, address: str | None = None) -> str: ...

    async def apoll(
        self, connection_id: str, last_seq: int | None = None, *, hold: float | None = None
    ) -> str: ...

    async def asend_and_poll(
        self, connection_id: str, text: str, last_seq: int | None = None
    ) -> str: ...

    async def areceive(self, connection_id: str, text: str, transport: Transport) -> int: ...

    async def aopen_stream(
        self,
        transport: Transport,
        connection_id: str | None = None,
        last_seq: int | None = None,
        *,
        address: str | None = None,
    ) -> AttachedStream: ...

    async def astats(self) -> dict[str, Any]: ...

    def stats(self) -> dict[str, Any]: ...

    def publish(self, connection_id: str, text: str) -> int: ...

    def broadcast(self, text: str) -> int: ...

    def disconnect_all(self, transport: Transport | None = None) -> int: ...


def make_hub(settings: Settings) -> Backend:
    """The hub ``settings`` ask for: in Redis when ``redis_url`` is set, else in memory."""
    if settings.redis_url:
        from .redis_hub import RedisHub

        return RedisHub(settings)
    from .hub import Hub

    return Hub(settings)
