"""Adapters tests run on tiny tensors, single-threaded and seeded."""

from tests.unit.tiny_torch import small_tensors

__all__ = ["small_tensors"]
