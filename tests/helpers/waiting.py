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


#: Syscall numbers by machine, as /proc/<pid>/task/<tid>/syscall shows them
#: while a thread is inside one.
SYSCALLS = {
    "x86_64": {"epoll_wait": "232", "epoll_pwait": "281", "epoll_pwait2": "441", "bpf": "321"},
    "aarch64": {"epoll_pwait": "22", "epoll_pwait2": "441", "bpf": "280"},
}
EPOLL_WAITS = ("epoll_wait", "epoll_pwait", "epoll_pwait2")


def wait_in_syscall(pid: int, tid: int, names: tuple[str, ...], timeout: float = 60.0) -> bool:
    """Wait until thread ``tid`` of process ``pid`` is inside one of the syscalls
    ``names`` (e.g. blocked in a poll), so a signal sent next cannot come before
    it, however loaded the machine.  False on a timeout, when the thread is gone,
    or on a machine without a table (after 0.3 s, a best effort)."""
    import platform

    table = SYSCALLS.get(platform.machine())
    if table is None:
        time.sleep(0.3)
        return False
    want = {table[n] for n in names if n in table}
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                if f.read().split(" ", 1)[0] in want:
                    return True
        except OSError:
            return False
        time.sleep(0.002)
    return False
