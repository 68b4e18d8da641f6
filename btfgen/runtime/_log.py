"""libbpf's print callback: capture its lines so errors can carry them.

libbpf prints through one process-wide callback.  We install ours once; every
line of level WARN and INFO (and DEBUG when ``BTFGEN_LIBBPF_DEBUG`` is set) is
appended to a bounded buffer.  :func:`capture` brackets a call and returns the
lines printed during it.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from btfgen.runtime._libbpf import ffi, lib, libc

LIBBPF_WARN, LIBBPF_INFO, LIBBPF_DEBUG = 0, 1, 2
#: Longest message kept (the verifier log does not come this way: see bpfobj).
LINE_MAX = 16384

_lines: deque[str] = deque(maxlen=5000)
_count = [0]  # lines ever appended, to find the ones printed during a capture
_lock = threading.Lock()
_installed: list[Any] = []
_echo = bool(os.environ.get("BTFGEN_LIBBPF_DEBUG"))


def _print_line(level: int, fmt: Any, ap: Any) -> int:
    if level == LIBBPF_DEBUG and not _echo:
        return 0
    buf = ffi.new("char[]", LINE_MAX)
    n = libc().vsnprintf(buf, LINE_MAX, fmt, ap)
    text = ffi.string(buf).decode(errors="replace")
    if n >= LINE_MAX:
        text += f" [... {n - LINE_MAX + 1} more bytes]"
    with _lock:
        for line in text.rstrip("\n").split("\n"):
            _lines.append(line)
            _count[0] += 1
    if _echo:
        sys.stderr.write(text)
    return 0


def install() -> None:
    """Route libbpf's messages to our buffer (idempotent)."""
    if not _installed:
        cb = ffi.callback("int(int, const char *, void *)", _print_line)
        lib().libbpf_set_print(cb)
        _installed.append(cb)  # keep the callback alive


@contextmanager
def capture() -> Iterator[list[str]]:
    """Collect the lines libbpf prints inside the block into the yielded list."""
    install()
    with _lock:
        start = _count[0]
    out: list[str] = []
    try:
        yield out
    finally:
        with _lock:
            new = min(_count[0] - start, len(_lines))
            if new:
                out.extend(list(_lines)[-new:])
