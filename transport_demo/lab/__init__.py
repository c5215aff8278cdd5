"""The lab: the instruments the notebooks use to show what crosses the wire.

Owns the raw HTTP, WebSocket and HTTP/2 views (``wire``, ``ws_wire``, ``h2_wire``), a
spec-following ``EventSource`` in Python (``eventsource``), the experiments and measurements cells
call (``experiments``), the security lab's attacks (``security``), where the browser stops a page
(``browser_limits``: the back/forward cache, a radio's cost per heartbeat), the exercises and their
checks (``exercises``), a network you can dial (``network``: TCP, and UDP for QUIC in
``udp_relay``, with delay and loss), head-of-line blocking measured under loss over one WebSocket
and one WebTransport session (``head_of_line``), the packet lens (``capture``: the relay's pcapng;
``capture_file``: reading it back; ``dissect``: each packet's summary; ``keylog``: TLS 1.3 records
decrypted with a key log; ``wire_cost``: bytes per message counted from a capture), a buffering
proxy and a 204 server to show what goes wrong (``proxy``, ``no_content``), and a real Redis for
notebook 05 and the tests (``local_redis``).

May import: ``transport_demo.server`` (the vocabulary and the launcher) and ``clients``; never
``widgets``, ``classroom`` or ``bench``.
"""
