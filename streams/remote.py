"""Awaiting Ray work from the event loop: transient failures wait, bad records are found.

A failure is *transient* when the cluster, not the record, is at fault: an actor died,
restarts or is unreachable, a node or an object was lost, a timeout, a connection or the
vector store failed, the broker did not answer (aiokafka's retriable errors and its
timeout), or the catalog kept moving between model versions. Those are
retried with capped exponential backoff until they work (or for ``give_up_after``
seconds when set), so the partitions this agent reads wait meanwhile. Any other error
was raised by the worker code for this input: `in_halves` splits the batch until the
record that causes it is alone, and only that record goes to dead letters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import ray.exceptions as rex
from aiokafka.errors import KafkaError, KafkaTimeoutError

from streams import metrics
from streams.settings import RetryConfig
from workers.recommender import VersionMoved
from workers.store.base import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")


class GaveUp(RuntimeError):
    """Transient failures lasted longer than ``give_up_after``."""


class InputFailed(RuntimeError):
    """The worker code raised for this input (``cause``): not the cluster's fault."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.cause = cause


# The cluster's faults. A RayTaskError carries the worker code's exception as ``cause``
# (and Ray's dynamic subclass is an instance of it too), so an actor that died under a
# task of another actor still counts as transient.
_TRANSIENT: tuple[type[BaseException], ...] = (
    rex.RayActorError,  # ActorDiedError, ActorUnavailableError
    rex.ActorHandleNotFoundError,
    rex.ActorUnschedulableError,
    rex.GetTimeoutError,
    rex.LocalRayletDiedError,
    rex.NodeDiedError,
    rex.ObjectLostError,  # OwnerDiedError, ObjectFetchTimedOutError, ...
    rex.ObjectStoreFullError,
    rex.OutOfMemoryError,
    rex.RaySystemError,
    rex.RpcError,
    rex.TaskUnschedulableError,
    rex.WorkerCrashedError,
    ConnectionError,
    TimeoutError,
    StoreError,  # the vector store's engine or server
    VersionMoved,  # the catalog kept changing model version under a batch
    KafkaTimeoutError,  # the broker did not answer a produce in time
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it, through Ray's task errors) is the cluster's fault."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, KafkaError) and current.retriable:
            return True
        current = getattr(current, "cause", None) or current.__cause__
    return False


class Backoff:
    """The waits between tries of something failing transiently: ``retry.backoff``,
    doubling up to ``retry.max_backoff``; each failure logged with its count."""

    def __init__(self, retry: RetryConfig) -> None:
        self.retry = retry
        self.next = retry.backoff
        self.failures = 0

    async def wait(self, what: str, error: BaseException) -> None:
        self.failures += 1
        log.warning(
            "%s failed (%d in a row), retrying in %.1f s: %s",
            what,
            self.failures,
            self.next,
            describe(error),
        )
        await asyncio.sleep(self.next)
        self.next = min(self.next * 2, self.retry.max_backoff)


async def call_until_done(
    submit: Callable[[], Awaitable[T]], retry: RetryConfig, *, what: str = "ray call"
) -> T:
    """``await submit()`` (a Ray ObjectRef) until it works; never ``ray.get``.

    Transient failures are retried (`is_transient`); `GaveUp` once ``give_up_after``
    passes. Any other error is raised at once as `InputFailed`, for the caller to find
    the bad record.
    """
    started = time.monotonic()
    backoff = Backoff(retry)
    took = metrics.RAY_CALL.labels(call=what)
    while True:
        try:
            result = await submit()
            took.observe(time.monotonic() - started)
            return result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                metrics.RAY_FAILURES.labels(call=what, kind="input").inc()
                raise InputFailed(exc) from exc
            metrics.RAY_FAILURES.labels(call=what, kind="transient").inc()
            waited = time.monotonic() - started
            if retry.give_up_after is not None and waited + backoff.next > retry.give_up_after:
                raise GaveUp(f"{what} still failing after {waited:.0f} s: {describe(exc)}") from exc
            await backoff.wait(what, exc)


async def in_halves(
    records: Sequence[T],
    serve: Callable[[Sequence[T]], Awaitable[None]],
    reject: Callable[[Sequence[T], BaseException], Awaitable[None]],
) -> None:
    """``serve(records)``; if its work fails for its input (`InputFailed`), serve each
    half in order, down to single records, and ``reject`` only a record that fails alone
    (with the cause), or a batch that `GaveUp`. Any other error (the broker's, when
    writing outputs) propagates: the batch is not acknowledged and is read again.

    ``serve`` must write nothing before its work is done.
    """
    try:
        await serve(records)
    except GaveUp as exc:
        await reject(records, exc)
    except InputFailed as exc:
        if len(records) == 1:
            await reject(records, exc.cause)
            return
        log.warning("a batch of %d failed (%s): serving it in halves", len(records), describe(exc))
        mid = len(records) // 2
        await in_halves(records[:mid], serve, reject)
        await in_halves(records[mid:], serve, reject)


def runs(records: Sequence[T], kind: Callable[[T], object]) -> list[list[T]]:
    """``records`` cut into runs of consecutive records of one ``kind``, in order (a batch
    whose records must apply in order, served a run at a time)."""
    out: list[list[T]] = []
    for record in records:
        if out and kind(out[-1][-1]) == kind(record):
            out[-1].append(record)
        else:
            out.append([record])
    return out


def describe(exc: BaseException) -> str:
    """A one-line reason for a dead letter."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]
