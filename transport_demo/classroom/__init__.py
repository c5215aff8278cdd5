"""Classroom mode: the instructor's machine serves the room, students' browsers join.

Owns ``room`` (``start_classroom()`` and :class:`Classroom`: the join URL, its QR code, broadcast,
cut and restart, and the class view). The join page, the LAN address and the per-address limits
are the server's own (``server.join_page``, ``server.lan``, ``server.admission``); the class view
widget is ``widgets.classroom``.

May import: ``server`` and (lazily, for the view) ``widgets``.
"""
