"""One autouse fixture for tests on tiny tensors: single-threaded and seeded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def small_tensors() -> Iterator[None]:
    # These tensors are tiny: intra-op threads cost more than they save (and make a
    # loaded CI box 10x slower). Seeded so every test is deterministic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
