"""Work over thousands of records at once without the cyclic garbage collector.

Turning a fleet-wide answer (20,000 series) into signals and comparing them with as many stored
incidents allocates hundreds of thousands of small objects and no reference cycles; each
allocation burst triggers collections that traverse every live object, which cost 40–50 % of
that work at 20,000 series (bench/README.md). The collector is paused for the batch, then runs
as usual.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def no_gc_pauses() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
