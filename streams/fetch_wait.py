"""How long a worker's fetch may wait at the broker: short while records flow, long idle.

A consumer's fetch asks the broker to hold it up to ``fetch_max_wait_ms`` when there is
nothing to return. The embedded broker (Tansu 0.6) does not answer such a fetch as soon
as records arrive: a record produced while a fetch waits is delivered within about half
the wait (measured with a bare aiokafka consumer and a record every 1 ms: median 27.9 ms
at 100, 5.6 at 20, 2.0 at 5; docs/ENVIRONMENT-NOTES.md). A short wait all the time costs
an idle worker a fetch round trip every few ms (its and the broker's CPU); a long one
puts its delay on every event.

So the wait follows the traffic (`FetchWait`): ``fetch_busy_wait_ms`` while some fetch
returned records within the last ``fetch_max_wait_ms``, ``fetch_max_wait_ms`` after
that. An idle worker polls as rarely as before; the first record after a quiet spell
waits as before, and those that follow it get the short wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any


class FetchWait:
    """The wait of the next fetch, from whether the fetches so far returned records."""

    def __init__(
        self, busy_ms: int, idle_ms: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.busy_ms, self.idle_ms = min(busy_ms, idle_ms), idle_ms
        self.clock = clock
        self.last_records = float("-inf")

    def after(self, got_records: bool) -> int:
        """A fetch came back (with records or not): the next fetch's wait, ms."""
        now = self.clock()
        if got_records:
            self.last_records = now
        busy = (now - self.last_records) * 1000.0 < self.idle_ms
        return self.busy_ms if busy else self.idle_ms


def follow_traffic(fetcher: Any, wait: FetchWait) -> None:
    """Make a started aiokafka ``Fetcher`` set its wait by ``wait`` after each fetch.

    aiokafka builds each fetch request from ``Fetcher._fetch_max_wait_ms`` once the
    previous fetch to that broker is handled (``_proc_fetch_request``, which returns
    whether records or an error came back), so setting it there times the next one."""
    handle: Callable[..., Coroutine[Any, Any, bool]] = fetcher._proc_fetch_request

    async def handle_and_adapt(*args: Any, **kwargs: Any) -> bool:
        got = await handle(*args, **kwargs)
        fetcher._fetch_max_wait_ms = wait.after(bool(got))
        return got

    fetcher._proc_fetch_request = handle_and_adapt
