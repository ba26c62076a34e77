"""Awaiting Ray work from the event loop, with bounded retries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


async def call_with_retries(
    submit: Callable[[], Any], *, attempts: int = 3, backoff: float = 0.5, what: str = "ray call"
) -> Any:
    """``await submit()`` (a Ray ObjectRef) up to ``attempts`` times.

    Never ``ray.get``: awaiting the ref keeps the event loop free. The last error is
    re-raised for the caller to dead-letter the batch.
    """
    for attempt in range(1, attempts + 1):
        try:
            return await submit()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning("%s failed (attempt %d/%d): %r", what, attempt, attempts, exc)
            await asyncio.sleep(backoff * attempt)
    raise AssertionError("unreachable")


def describe(exc: BaseException) -> str:
    """A one-line reason for a dead letter."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"[:500]
