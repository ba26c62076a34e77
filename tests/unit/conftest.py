"""Fixtures of the unit tests that talk to a real embedded broker process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tooling.broker import EmbeddedBroker, start_broker


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    running = start_broker()
    try:
        yield running
    finally:
        running.stop()
