"""Guards that turn a hang or a runaway allocation of the code under test into a test failure,
so an attack that works fails its test instead of stalling or starving the machine."""

from __future__ import annotations

import resource
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """TimeoutError when the block runs longer than `seconds` (main thread only)."""

    def expired(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _address_space() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


@contextmanager
def memory_cap(extra_bytes: int) -> Iterator[None]:
    """MemoryError when the process grows by more than `extra_bytes` of address space."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (_address_space() + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@contextmanager
def bounded(seconds: float = 10.0, extra_bytes: int = 512 * 1024 * 1024) -> Iterator[None]:
    """`deadline` and `memory_cap` together."""
    with deadline(seconds), memory_cap(extra_bytes):
        yield
