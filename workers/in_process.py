"""A plain object called the way callers call a Ray actor, inside this process.

``InProcess(obj).method.remote(*args)`` returns an awaitable that runs
``obj.method(*args)`` on one thread of its own (so calls run one at a time, in order,
and never on the event loop), as ``handle.method.remote(*args)`` does for an actor. The
streams side then awaits a recommender the same way wherever it is placed; an exception
reaches the caller as raised (no RayTaskError around it).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any


class _Method:
    def __init__(self, function: Any, pool: ThreadPoolExecutor) -> None:
        self.function, self.pool = function, pool

    def remote(self, *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.pool, partial(self.function, *args, **kwargs))


class InProcess:
    """``obj``'s public methods as ``.remote`` calls on one dedicated thread."""

    def __init__(self, obj: Any, name: str) -> None:
        self.obj = obj
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Method(getattr(self.obj, name), self.pool)
