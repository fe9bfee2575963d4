"""A chat room anyone can try in a browser: ``python -m trio_rooms.demo``.

The page is served over plain HTTP on ``--port`` (default 8000) and the rooms over
WebSocket on ``--port + 1``. The page does not assume that convention: it asks the
HTTP server for ``/config.json`` (``{"wsPort": N}``) and connects to
``ws://<page host>:N/rooms/<room>/websocket?name=<name>&resume=<token>``; the room
comes from the URL hash (``http://127.0.0.1:8000/#lobby``, the default room is
``lobby``). The resume token (empty at first) brings the tab's session back, name
included, after a reload, a dropped connection or a server restart.

The history and the sessions are stored in SQLite (``--db``, by default
``trio_rooms_demo.db`` in the current directory).

``app`` holds the chat room and its wire protocol, ``_http`` the tiny static-file
server, ``static/`` the page (plain HTML, CSS and JavaScript, no build step).
"""
