"""Pausing Python's cyclic garbage collector around batch work.

Decoding a batch creates hundreds of thousands of small objects (pydantic models, strings);
each allocation burst triggers collections that traverse every live object, which made
decoding ~3x slower. Our batch objects form no reference cycles (they are freed by
reference counting), so the collector is paused while a batch is built and restored after.
Re-entrant and thread-safe: the collector comes back on when the last user leaves.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_users = 0
_was_enabled = True


@contextmanager
def gc_paused() -> Iterator[None]:
    global _users, _was_enabled  # noqa: PLW0603 - one collector per process
    with _lock:
        if _users == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _was_enabled:
                gc.enable()
