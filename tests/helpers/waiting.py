"""Wait on a condition with a generous deadline instead of sleeping a fixed time:
quick on a quiet machine, still right when the machine is loaded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(read: Callable[[], T], ok: Callable[[T], bool], timeout: float = 30.0,
             step: float = 0.01) -> T:
    """Call ``read()`` until ``ok(value)`` or ``timeout`` seconds passed; the last
    value (the caller asserts on it, so a timeout fails with what was seen)."""
    end = time.monotonic() + timeout
    value = read()
    while not ok(value) and time.monotonic() < end:
        time.sleep(step)
        value = read()
    return value
