"""The serving lock's turns (`streams.inflight.Serving`): idle only while no batch is
queued for it or holds it, which is when an agent's next batch stops growing."""

from __future__ import annotations

import asyncio

from streams.inflight import Serving


def test_serving_is_idle_only_while_no_batch_is_queued_or_served() -> None:
    async def run() -> list[object]:
        serving = Serving()
        seen: list[object] = [serving.idle.is_set()]
        first, second = serving.queue(), serving.queue()
        seen.append(serving.idle.is_set())
        async with first:
            entering = asyncio.ensure_future(second.__aenter__())
            await asyncio.sleep(0.01)
            seen.append(entering.done())  # the lock is first's
        await entering
        seen.append(serving.idle.is_set())  # second holds it
        await second.__aexit__(None, None, None)
        seen.append(serving.idle.is_set())
        second.leave()  # a second end changes nothing
        third = serving.queue()
        third.leave()  # a batch that never served
        seen.append(serving.idle.is_set())
        return seen

    assert asyncio.run(run()) == [True, False, False, False, True, True]
