"""A chat room anyone can try in a browser: ``python -m trio_rooms.demo``.

The page and the rooms share one port (``--port``, default 8000), served by
hypercorn's trio worker: the page connects to its own origin,
``ws://<page host:port>/rooms/<room>/websocket?name=<name>&resume=<token>``; the room
comes from the URL hash (``http://127.0.0.1:8000/#lobby``, the default room is
``lobby``). The resume token (empty at first) brings the tab's session back, name
included, after a reload, a dropped connection or a server restart.

The history and the sessions are stored in SQLite (``--db``, by default
``trio_rooms_demo.db`` in the current directory).

``app`` holds the chat room, its wire protocol and the server, ``_site`` the ASGI
app that serves the page's files in front of the rooms, ``static/`` the page (plain
HTML, CSS and JavaScript, no build step).
"""
