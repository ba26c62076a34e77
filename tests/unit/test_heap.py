"""`streams.heap` against the real C library (glibc on the project's machines)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from streams import heap
from streams.settings import Settings

glibc = pytest.mark.skipif(heap._glibc() is None, reason="not glibc")

# Frees 125 MB of 32 KB blocks below one that stays allocated: glibc cannot shrink its heap
# past a block in use, so without a trim the freed pages stay in the process's RSS.
FRAGMENTED = textwrap.dedent(
    """
    import ctypes
    from streams import heap

    def rss_kb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    blocks = [libc.malloc(32 * 1024) for _ in range(4000)]
    for block in blocks:
        libc.memset(block, 1, 32 * 1024)
    for block in blocks[:-1]:
        libc.free(block)
    before = rss_kb()
    released = heap.{call}
    print(before, rss_kb(), released)
    """
)


def _run(call: str) -> tuple[int, int, str]:
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENTED.format(call=call)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), int(out[1]), out[2]


@glibc
def test_trim_hands_freed_pages_back() -> None:
    before, after, released = _run("trim()")
    assert released == "True"
    assert before - after > 100_000  # kB: most of the 125 MB freed


@glibc
def test_without_a_trim_the_freed_pages_stay() -> None:
    before, after, released = _run("limit_arenas(0)")  # a call that trims nothing
    assert released == "False"
    assert abs(before - after) < 10_000


@glibc
def test_the_arena_cap_is_set() -> None:
    assert heap.limit_arenas(4) is True
    assert heap.limit_arenas(0) is False  # 0 keeps glibc's default


def test_heap_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings().heap
    assert (defaults.arenas, defaults.trim_interval) == (2, 60.0)
    monkeypatch.setenv("STREAMREC_HEAP__TRIM_INTERVAL", "0")
    monkeypatch.setenv("STREAMREC_HEAP__ARENAS", "0")
    assert (Settings().heap.arenas, Settings().heap.trim_interval) == (0, 0.0)
