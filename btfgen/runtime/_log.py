"""libbpf's print callback: its messages go to the logger ``btfgen.libbpf`` and to
the errors raised.

libbpf prints through one process-wide callback.  We install ours once; each
message goes to the Python logger ``btfgen.libbpf`` (WARN at WARNING, INFO at
INFO, DEBUG at DEBUG; the logger's level is read at every message, so it can be
changed at any time), and WARN and INFO lines (DEBUG too while the logger shows
them) are kept in a bounded buffer: :func:`capture` brackets a call and returns
the lines printed during it, which the raised :class:`BpfError` carries.
Like any library's logger it has a ``NullHandler``: configure logging
(``logging.basicConfig(level=logging.INFO)``) to see the messages.
``BTFGEN_LIBBPF_DEBUG=1`` sets the logger to DEBUG with a stderr handler.
"""

from __future__ import annotations

import os
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
# logging's level numbers (fixed by the logging module): importing logging costs ~7 ms,
# paid when libbpf is first used (install()), not by every generated module's import.
_DEBUG, _INFO, _WARNING = 10, 20, 30
_LEVELS = {LIBBPF_WARN: _WARNING, LIBBPF_INFO: _INFO, LIBBPF_DEBUG: _DEBUG}
#: Where libbpf's messages go: the ``btfgen.libbpf`` logger, set up by install().
logger: Any = None


def _make_logger() -> Any:
    import logging

    lg = logging.getLogger("btfgen.libbpf")
    lg.addHandler(logging.NullHandler())
    if os.environ.get("BTFGEN_LIBBPF_DEBUG"):
        lg.setLevel(logging.DEBUG)
        lg.addHandler(logging.StreamHandler())
    return lg


_local = threading.local()


def _print_line(level: int, fmt: Any, ap: Any) -> int:
    py_level = _DEBUG if getattr(_local, "demoted", 0) else _LEVELS.get(level, _DEBUG)
    if py_level == _DEBUG and not logger.isEnabledFor(_DEBUG):
        return 0  # libbpf's debug output is large: not even formatted unless shown
    buf = ffi.new("char[]", LINE_MAX)
    n = libc().vsnprintf(buf, LINE_MAX, fmt, ap)
    text = ffi.string(buf).decode(errors="replace")
    if n >= LINE_MAX:
        text += f" [... {n - LINE_MAX + 1} more bytes]"
    with _lock:
        for line in text.rstrip("\n").split("\n"):
            _lines.append(line)
            _count[0] += 1
    if logger.isEnabledFor(py_level):
        logger.log(py_level, "%s", text.rstrip("\n"))
    return 0


def install() -> None:
    """Route libbpf's messages to our buffer (idempotent)."""
    global logger
    if not _installed:
        if logger is None:
            logger = _make_logger()
        cb = ffi.callback("int(int, const char *, void *)", _print_line)
        lib().libbpf_set_print(cb)
        _installed.append(cb)  # keep the callback alive


@contextmanager
def demoted() -> Iterator[None]:
    """Log libbpf's messages inside the block at DEBUG: for calls whose failure is
    expected and handled (e.g. creating a qdisc that may exist)."""
    _local.demoted = getattr(_local, "demoted", 0) + 1
    try:
        yield
    finally:
        _local.demoted -= 1


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
