"""``bpf_printk`` output from tracefs, parsed.

::

    with trace_pipe() as pipe:                  # the global trace_pipe, as bcc reads it
        for line in pipe:                       # blocks; Ctrl-C ends it
            print(line.pid, line.message)

    with trace_pipe(instance=f"mytool-{os.getpid()}") as pipe:
        line = pipe.read(timeout=1.0)           # None after a second without output

Reading ``trace_pipe`` consumes what it returns: two readers of the global pipe
split the lines between them.  ``instance=NAME`` creates a tracefs instance of
its own with only ``bpf_trace_printk`` enabled (every ``bpf_printk`` goes to both
the global buffer and such instances) and removes it on close, so concurrent
readers each see every line.  No thread is used: reads poll the pipe, so
closing (or Ctrl-C) never waits on a blocked read.
"""

from __future__ import annotations

import errno
import os
import re
import select
import threading
import time
from collections.abc import Iterator
from typing import NamedTuple

from btfgen.runtime.system import DEBUGFS_TRACING, TRACEFS, TracefsError, ensure_tracefs

#: ``<task>-<pid> [(<tgid>)] [<cpu>] <flags> <seconds>: <event>: <message>``
_LINE = re.compile(
    r"^\s*(?P<task>.*?)-(?P<pid>\d+)\s+(?:\(\s*[-\d]+\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>\S{4,5})\s+)?(?P<ts>\d+\.\d+):\s+(?P<event>[^:\s]+):\s?(?P<message>.*)$")

#: How long one poll waits before checking whether the pipe was closed.
POLL_SLICE_S = 0.2


class TraceLine(NamedTuple):
    """One parsed trace_pipe line (``event`` is ``bpf_trace_printk`` for bpf_printk)."""

    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    event: str
    message: str
    raw: str


def parse_line(raw: str) -> TraceLine | None:
    """Parse one trace_pipe line; None for lines of another shape (e.g. lost-event notes)."""
    m = _LINE.match(raw)
    if m is None:
        return None
    return TraceLine(m["task"], int(m["pid"]), int(m["cpu"]), m["flags"] or "",
                     float(m["ts"]), m["event"], m["message"], raw)


def _tracing_dir() -> str:
    ensure_tracefs()
    for d in (TRACEFS, DEBUGFS_TRACING):
        if os.path.isdir(os.path.join(d, "events")):
            return d
    raise TracefsError(f"tracefs has no events directory under {TRACEFS}")


class TracePipe:
    """An open trace_pipe: iterate for lines, :meth:`read` with a timeout, :meth:`close`."""

    def __init__(self, instance: str | None = None) -> None:
        self._fd: int | None = None
        self._instance_dir: str | None = None
        # close() from another thread than a reader's: the reader in select()/read()
        # keeps the fd (its number must not be reused under it) and closes it after.
        self._lock = threading.Lock()
        self._readers = 0
        self._deferred: int | None = None
        root = _tracing_dir()
        if instance is not None:
            if not instance or "/" in instance or instance in (".", ".."):
                raise ValueError(f"trace_pipe: instance name {instance!r} is not a plain name")
            d = os.path.join(root, "instances", instance)
            try:
                os.mkdir(d)
            except FileExistsError:
                raise TracefsError(f"tracefs instance {instance!r} exists already "
                                   f"({d}); pick another name") from None
            self._instance_dir = d
            try:
                with open(os.path.join(d, "events/bpf_trace/bpf_trace_printk/enable"), "w") as f:
                    f.write("1")
            except OSError:
                self._remove_instance()
                raise
            root = d
        path = os.path.join(root, "trace_pipe")
        try:
            self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            self._remove_instance()
            raise
        self.path = path
        self._pending = b""
        #: Lines the parser did not recognise (kept, not dropped silently).
        self.unparsed: list[str] = []

    def _remove_instance(self) -> None:
        d, self._instance_dir = self._instance_dir, None
        if d is not None:
            for _ in range(50):  # EBUSY while the kernel still holds a reader
                try:
                    os.rmdir(d)
                    return
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        return
                    time.sleep(0.02)

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._fd is None

    def fileno(self) -> int:
        """The pipe's fd (for selectors); ValueError once closed."""
        if self._fd is None:
            raise ValueError("trace_pipe is closed")
        return self._fd

    def _take_line(self) -> TraceLine | None:
        while b"\n" in self._pending:
            raw, self._pending = self._pending.split(b"\n", 1)
            text = raw.decode(errors="replace")
            line = parse_line(text)
            if line is not None:
                return line
            if text.strip():
                self.unparsed.append(text)
        return None

    def read(self, timeout: float | None = None) -> TraceLine | None:
        """The next line; None when ``timeout`` seconds pass without one (or the pipe
        is closed).  ``timeout=None`` waits as long as it takes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            line = self._take_line()
            if line is not None:
                return line
            left = POLL_SLICE_S if deadline is None else min(POLL_SLICE_S,
                                                              deadline - time.monotonic())
            if left <= 0:
                return None
            with self._lock:
                fd = self._fd
                if fd is None:
                    return None
                self._readers += 1
            try:
                self._pending += self._read_some(fd, left)
            finally:
                with self._lock:
                    self._readers -= 1
                    deferred = self._deferred if not self._readers else None
                    if deferred is not None:
                        self._deferred = None
                if deferred is not None:
                    self._release(deferred)

    @staticmethod
    def _read_some(fd: int, wait: float) -> bytes:
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return b""
        try:
            return os.read(fd, 65536)
        except BlockingIOError:
            return b""
        except OSError as e:
            if e.errno == errno.EINTR:
                return b""
            raise

    def __iter__(self) -> Iterator[TraceLine]:
        while True:
            line = self.read()
            if line is None:
                return
            yield line

    def close(self) -> None:
        """Close the pipe (and remove the private instance); idempotent.  From another
        thread, a blocked read() returns None within ``POLL_SLICE_S``."""
        with self._lock:
            fd, self._fd = self._fd, None
            if fd is not None and self._readers:
                self._deferred, fd = fd, None  # the reader closes it
        if fd is not None:
            self._release(fd)
        elif self._deferred is None:
            self._remove_instance()

    def _release(self, fd: int) -> None:
        os.close(fd)
        self._remove_instance()

    def __enter__(self) -> TracePipe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if hasattr(self, "_lock"):
            self.close()


def trace_pipe(instance: str | None = None) -> TracePipe:
    """Open tracefs' trace_pipe (``instance=NAME``: a private instance, see the module)."""
    return TracePipe(instance)


__all__ = ["TraceLine", "TracePipe", "parse_line", "trace_pipe"]
