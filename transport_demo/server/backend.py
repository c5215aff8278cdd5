"""Which backend serves: :func:`make_hub`, and :data:`Backend`, the type the routers, the app and
the launcher hold it by.

Both backends are a :class:`~transport_demo.server.delivery.Delivery` (the one delivery layer)
over a store: :class:`~transport_demo.server.hub.Hub` keeps connections in this process's memory
(the default, the fast path); :class:`~transport_demo.server.redis_hub.RedisHub` keeps them in
Redis, so that several server processes act as one (docs/scaling.md). The routers never know
which they talk to.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from .delivery import Delivery
from .settings import Settings

__all__ = ["Backend", "make_hub"]

Backend: TypeAlias = Delivery[Any, Any]
"""Either backend, as the routers see it."""


def make_hub(settings: Settings) -> Backend:
    """The hub ``settings`` ask for: in Redis when ``redis_url`` is set, else in memory."""
    if settings.redis_url:
        from .redis_hub import RedisHub

        return RedisHub(settings)
    from .hub import Hub

    return Hub(settings)
