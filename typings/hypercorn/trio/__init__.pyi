# Only the names trio_rooms uses. hypercorn's own annotation of ``serve`` includes
# its WSGI app type, ``Callable[[dict, Callable], ...]``, which pyright strict reports
# as partially unknown at every call; trio_rooms serves ASGI apps only.
from collections.abc import Awaitable, Callable
from typing import Literal

import trio
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework

async def serve(
    app: ASGIFramework,
    config: Config,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]] | None = None,
    task_status: trio.TaskStatus[list[str]] = ...,
    mode: Literal["asgi"] | None = None,
) -> None: ...
