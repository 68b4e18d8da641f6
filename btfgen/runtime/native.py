"""The native layer under every runtime wrapper: libbpf call checks, owned pointers,
and the state of one ``struct bpf_object``.

:class:`ObjectCore` is what programs, maps, links and buffers hold: the object's
pointer (checked for liveness on every use), its load state and the list of
native things it frees when it is closed.  It never references the Python
wrappers, so dropping the last wrapper of an object frees it at once (no
reference cycle waits for the garbage collector).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from btfgen.runtime import _log
from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.errors import RuntimeBpfError, error_class


def c_name(ptr: Any) -> str:
    """A name libbpf returns (``const char *``) as str.  Object names may be any
    bytes: those that are not UTF-8 survive as surrogateescape code points, as
    the generator spells them, and :func:`c_bytes` gives them back."""
    return bytes(ffi.string(ptr)).decode("utf-8", "surrogateescape")


def c_bytes(name: str) -> bytes:
    """The bytes of a name for libbpf (the inverse of :func:`c_name`)."""
    return name.encode("utf-8", "surrogateescape")


def check_ptr(what: str, call: Callable[[], Any]) -> Any:
    """Run a libbpf call returning a pointer; NULL becomes a :class:`BpfError`."""
    with _log.capture() as log:
        ptr = call()
        err = ffi.errno or errno.EINVAL
    if ptr == ffi.NULL:
        raise error_class(err)(what, err, log)
    return ptr


def check_int(what: str, call: Callable[[], int]) -> int:
    """Run a libbpf call returning 0/-errno; negative becomes a :class:`BpfError`."""
    with _log.capture() as log:
        rc = int(call())
    if rc < 0:
        raise error_class(rc)(what, rc, log)
    return rc


#: Frees that change kernel state every process sharing the fds sees, and the
#: libbpf call giving the fd a forked child closes instead: bpf_link__destroy
#: disables a perf event link's event, perf_buffer__free disables the per-CPU
#: events and deletes them from the (shared) perf event array.
_FOREIGN_FREE = {"bpf_link__destroy": "bpf_link__fd", "perf_buffer__free": "perf_buffer__epoll_fd"}


#: Makes "take the pointer, leave None" one step: two threads closing the same
#: native never both free it.
_TAKE = threading.Lock()


def take(obj: Any, attr: str, empty: Any = None) -> Any:
    """``obj.attr``, replaced by ``empty`` in the same step (under a lock)."""
    with _TAKE:
        value = getattr(obj, attr)
        setattr(obj, attr, empty)
    return value


class Native:
    """A libbpf pointer and the function that frees it, freed at most once.

    The object keeps these (not the Python wrappers) so its finalizer never
    reaches back to the object itself.  In a process other than the one that
    made it (a forked child, whose finalizers run at exit too) a free that would
    change shared kernel state only closes the child's copy of the fd; the rest
    goes with the process.
    """

    def __init__(self, ptr: Any, free: str) -> None:
        self.ptr: Any = ptr
        self._free = free
        self._pid = os.getpid()
        self._busy = 0
        self._close_pending = False

    def close(self) -> None:
        """Free the pointer (idempotent); deferred while a call is using it."""
        if self._busy:  # e.g. destroy() from a callback inside perf_buffer__poll
            self._close_pending = True
            return
        ptr = take(self, "ptr")
        if ptr is not None:
            if self._pid != os.getpid() and self._free in _FOREIGN_FREE:
                close_fd(int(getattr(lib(), _FOREIGN_FREE[self._free])(ptr)))
            else:
                getattr(lib(), self._free)(ptr)

    @property
    def busy(self) -> bool:
        """True while a call is using the pointer (between hold() and release())."""
        return self._busy > 0

    def hold(self) -> None:
        """Keep the pointer alive until release(), even if close() is called."""
        self._busy += 1

    def release(self) -> None:
        """End a hold(); a close() asked for meanwhile happens now."""
        self._busy -= 1
        if self._close_pending and not self._busy:
            self._close_pending = False
            self.close()

    @contextmanager
    def using(self) -> Iterator[Any]:
        """The pointer, kept alive for the block even if close() is called inside it."""
        self.hold()
        try:
            yield self.ptr
        finally:
            self.release()


def close_fd(fd: int) -> None:
    """Close ``fd`` if it is one, ignoring errors (cleanup paths)."""
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


def free_object(state: dict[str, Any]) -> None:
    """Free everything of one object (finalizer: must not reference the object).

    Buffers and links go first (newest first), then the object and its fds.
    """
    natives: list[Any] = state["natives"]
    while natives:
        try:
            natives.pop().close()
        except (OSError, IndexError):
            pass  # a detach the kernel already did, or another thread took the last one
    with _TAKE:
        ptr, state["ptr"] = state["ptr"], None
    if ptr is not None:
        lib().bpf_object__close(ptr)


class ObjectCore:
    """The state of one ``struct bpf_object`` shared by its programs, maps and links.

    ``ptr`` raises once the object is closed: every native call goes through it,
    so a wrapper used after ``destroy()`` raises a clear error instead of
    touching freed memory.
    """

    def __init__(self, ptr: Any, name: str) -> None:
        self.name = name
        self.loaded = False
        #: What the finalizer frees: the object pointer and everything it owns.
        self.state: dict[str, Any] = {"ptr": ptr, "natives": []}

    @property
    def ptr(self) -> Any:
        """The ``struct bpf_object *`` (raises once closed)."""
        ptr = self.state["ptr"]
        if ptr is None:
            raise self.closed_error()
        return ptr

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self.state["ptr"] is None

    def closed_error(self) -> RuntimeBpfError:
        """The error every use of a closed object raises."""
        return RuntimeBpfError(f"BPF object {self.name} is closed (destroy() was called, or "
                               "its skeleton was dropped); open a new one")

    def check_open(self) -> None:
        """Raise if the object has been closed."""
        if self.state["ptr"] is None:
            raise self.closed_error()

    def check_loaded(self) -> None:
        """Raise unless load() has succeeded."""
        self.check_open()
        if not self.loaded:
            raise RuntimeBpfError(f"BPF object {self.name} is not loaded yet; call load()")

    def check_not_loaded(self, what: str) -> None:
        """Raise if already loaded (for settings that only apply before load)."""
        self.check_open()
        if self.loaded:
            raise RuntimeBpfError(f"cannot {what} after load()")

    def own(self, native: Any) -> None:
        """Close ``native`` (link, perf/ring buffer, mmap: anything with close()) when this
        object is closed; nothing owned may reference the object."""
        self.check_open()
        self.state["natives"].append(native)

    def disown(self, native: Any) -> None:
        """Forget ``native`` (its user freed it)."""
        natives: list[Any] = self.state["natives"]
        for i, n in enumerate(natives):
            if n is native:
                del natives[i]
                break

    def close(self) -> None:
        """Free everything now (idempotent)."""
        free_object(self.state)
