"""Faust's aiokafka transport, with the consumer's fetch long-poll made configurable.

Faust 0.15.3 hard-codes ``fetch_max_wait_ms=1500`` for worker consumers. On a broker that
answers a fetch as soon as data arrives that costs nothing, but the embedded broker
(Tansu 0.6) does not wake an aiokafka long-poll on new data: every hop then waits out
the full 1.5 s (measured: aiokafka delivery 615 ms median at 1500, 15 ms at 100; see
docs/ENVIRONMENT-NOTES.md). ``STREAMREC_KAFKA__FETCH_MAX_WAIT_MS`` sets it.
"""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as driver


def transport_class(fetch_max_wait_ms: int) -> type[Any]:
    """A faust Transport class whose worker consumers long-poll at most ``fetch_max_wait_ms``."""

    class ConsumerThread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            # aiokafka hands this to its Fetcher when the consumer starts.
            consumer._fetch_max_wait_ms = fetch_max_wait_ms
            return consumer

    class FastFetchConsumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class FastFetchTransport(driver.Transport):
        Consumer = FastFetchConsumer

    return FastFetchTransport
