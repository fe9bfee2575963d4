"""The request target's forms (RFC 9112 section 3.2), shared by both transports.

Each transport hands the core an origin-form target (``/rooms/x/websocket?...``), so
that both route a request the same, whatever form its client sent.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["origin_form"]

# RFC 9112 section 3.2.2: a server MUST accept a target in absolute form (a proxy's
# request, which some clients send to origin servers too). Its scheme and authority go,
# so that it is routed as the origin-form path and query it names.
_ABSOLUTE_FORM: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#]*")


def origin_form(target: str) -> str:
    """``target`` in origin form: an absolute-form one's path and query (at least ``/``)."""
    if target.startswith("/"):
        return target
    absolute = _ABSOLUTE_FORM.match(target)
    if absolute is None:
        return target  # another form (``*``, authority): no route matches it
    rest = target[absolute.end() :]
    return rest if rest.startswith("/") else "/" + rest
