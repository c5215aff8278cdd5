"""The server: everything that runs when transport-demo serves.

Owns the protocol's vocabulary (``protocol``, ``transports``: the transport table), the sans-I/O
connection rules (``connection``), the one delivery layer above the stores (``delivery``, with
``waiters``, ``stream_loop``, ``held_polls``, ``events``, ``stats``, ``errors``), the two stores
that implement its store interface (memory: ``registry``, ``hub``, ``stream``; Redis:
``redis_hub``, ``redis_waiters``, ``redis_store``, ``redis_scripts``, ``redis_calls``), which one
serves (``backend``), one router per transport (``longpoll``, ``sse``, ``websocket``) and
the teaching endpoints (``lessons``), the app (``app``), the bounds a room of strangers needs
(``gatekeeper``, ``origins``, ``socket_guard``, ``admission``, ``ws_protocol``), and the launcher
notebooks use (``launcher``: ``start_server``).

May import: the standard library and its dependencies only — never ``lab``, ``classroom``,
``clients``, ``widgets`` or ``bench``, which all stand on it.
"""
