"""The worker's C heap: fewer glibc malloc arenas, and freed memory handed back.

    worker start ──limit_arenas(n)──► glibc (mallopt M_ARENA_MAX)
    timer, every trim_interval ──trim()──► glibc (malloc_trim(0)) ──► RSS falls by the
                                            free pages the arenas held

glibc gives each thread that meets contention its own arena (up to 8 per core) and keeps
freed memory inside them; RocksDB's, aiokafka's and Ray's threads all allocate in the
worker, and a soaked worker held ~130 MB free in its arenas (docs/ENVIRONMENT-NOTES.md).
Dask's workers do the same for the same reason (a periodic `malloc_trim`). On a C library
other than glibc (musl, macOS) both calls are unavailable and do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h


@cache
def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError as exc:
        log.info("heap: no C library to load (%s)", exc)
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None  # not glibc
    return libc


def limit_arenas(arenas: int) -> bool:
    """Cap glibc's malloc arenas for threads started from now on (0: glibc's default).
    True when the cap was set."""
    libc = _glibc()
    if arenas <= 0 or libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Hand the free pages of every arena back to the operating system. True when glibc
    released some."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
