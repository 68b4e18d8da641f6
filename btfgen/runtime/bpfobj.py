"""A libbpf ``struct bpf_object`` and its programs and links.

:class:`LibbpfObject` owns everything opened through it: closing it destroys its
links, frees its perf/ring buffers and closes the object (and with it every
program and map fd).  A ``weakref.finalize`` does the same at garbage collection
and interpreter exit, so nothing is left behind when the caller forgets.
"""

from __future__ import annotations

import errno
import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from btfgen.runtime import _log
from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.errors import BpfError, RuntimeBpfError, error_class
from btfgen.runtime.map_types import PERF_EVENT_ARRAY
from btfgen.runtime.system import ensure_tracefs, needs_tracefs

if TYPE_CHECKING:
    from btfgen.runtime.testrun import RunResult

#: Bytes for the kernel's verifier/BTF log during load.
KERNEL_LOG_SIZE = 1 << 20
#: Verifier log lines quoted in the exception message (all are in ``.verifier_log``).
VERIFIER_TAIL = 20


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
        if self.ptr is not None:
            ptr, self.ptr = self.ptr, None
            if self._pid != os.getpid() and self._free in _FOREIGN_FREE:
                _close_fd(int(getattr(lib(), _FOREIGN_FREE[self._free])(ptr)))
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


def _close_fd(fd: int) -> None:
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass


class Link:
    """An attachment of a program (``struct bpf_link``); ``destroy()`` detaches it."""

    def __init__(self, native: Native, program: Program) -> None:
        self._native = native
        self.program = program

    @property
    def fd(self) -> int:
        """The link's file descriptor (-1 once destroyed)."""
        ptr = self._native.ptr
        return int(lib().bpf_link__fd(ptr)) if ptr is not None else -1

    @property
    def alive(self) -> bool:
        """False once destroyed."""
        return self._native.ptr is not None

    def destroy(self) -> None:
        """Detach and free the link (idempotent)."""
        self._native.close()
        self.program._owner.disown(self._native)
        if self in self.program.links:
            self.program.links.remove(self)

    def __repr__(self) -> str:
        return f"<Link {self.program.name} fd={self.fd}>"


class Program:
    """A program of the object: name, section, fd after load, attach/detach."""

    def __init__(self, ptr: Any, owner: LibbpfObject) -> None:
        self._ptr = ptr
        self._owner = owner
        self.name: str = c_name(lib().bpf_program__name(ptr))
        self.section: str = c_name(lib().bpf_program__section_name(ptr))
        #: Live links of this program, in attach order.
        self.links: list[Link] = []

    @property
    def fd(self) -> int:
        """The program fd after load (-1 before)."""
        self._owner.check_open()
        return int(lib().bpf_program__fd(self._ptr))

    @property
    def autoload(self) -> bool:
        """Whether load() loads this program (settable before load)."""
        return bool(lib().bpf_program__autoload(self._ptr))

    @autoload.setter
    def autoload(self, value: bool) -> None:
        check_int(f"{self.name}: set autoload", lambda: lib().bpf_program__set_autoload(
            self._ptr, bool(value)))

    @property
    def autoattach(self) -> bool:
        """Whether libbpf knows how to attach this program from its section name."""
        return bool(lib().bpf_program__autoattach(self._ptr))

    def attach(self) -> Link:
        """Attach as the section name says (tracepoint, kprobe, ...); returns the link."""
        self._owner.check_loaded()
        if needs_tracefs(self.section):
            ensure_tracefs()
        ptr = check_ptr(f"attach program {self.name} ({self.section})",
                        lambda: lib().bpf_program__attach(self._ptr))
        return self._add_link(ptr)

    def attach_xdp(self, ifindex: int | str) -> Link:
        """Attach an XDP program to an interface (index or name)."""
        self._owner.check_loaded()
        idx = ifindex if isinstance(ifindex, int) else _ifindex(ifindex)
        ptr = check_ptr(f"attach XDP program {self.name} to ifindex {idx}",
                        lambda: lib().bpf_program__attach_xdp(self._ptr, idx))
        return self._add_link(ptr)

    def detach(self) -> None:
        """Destroy every link of this program."""
        for link in list(self.links):
            link.destroy()

    def _add_link(self, ptr: Any) -> Link:
        native = Native(ptr, "bpf_link__destroy")
        self._owner.own(native)
        link = Link(native, self)
        self.links.append(link)
        return link

    def __repr__(self) -> str:
        return f"<Program {self.name} section={self.section!r}>"

    def test_run(self, data: bytes | bytearray | memoryview = b"", *, ctx: Any = None,
                 repeat: int = 1, data_out_size: int | None = None) -> RunResult:
        """Run the loaded program on ``data`` (and ``ctx``: a generated record such as
        ``struct __sk_buff`` or bytes) with ``BPF_PROG_TEST_RUN``; returns
        ``(retval, data_out, ctx_out, duration_ns)``, ``ctx_out`` typed as ``ctx``.
        See :mod:`btfgen.runtime.testrun`."""
        from btfgen.runtime.testrun import prog_test_run

        self._owner.check_loaded()
        return prog_test_run(self.fd, self.name, data, ctx=ctx, repeat=repeat,
                             data_out_size=data_out_size)


def _ifindex(name: str) -> int:
    try:
        return int(open(f"/sys/class/net/{name}/ifindex").read())
    except OSError:
        raise RuntimeBpfError(f"no network interface named {name!r}") from None


class MapPtr:
    """A ``struct bpf_map`` pointer with its static properties."""

    def __init__(self, ptr: Any, owner: LibbpfObject) -> None:
        L = lib()
        self.ptr = ptr
        self.owner = owner
        self.name: str = c_name(L.bpf_map__name(ptr))
        self.map_type: int = int(L.bpf_map__type(ptr))
        self.key_size: int = int(L.bpf_map__key_size(ptr))
        self.value_size: int = int(L.bpf_map__value_size(ptr))
        self.internal: bool = bool(L.bpf_map__is_internal(ptr))

    @property
    def fd(self) -> int:
        """The map fd after load (negative before)."""
        self.owner.check_open()
        return int(lib().bpf_map__fd(self.ptr))

    @property
    def max_entries(self) -> int:
        """max_entries (settable before load)."""
        return int(lib().bpf_map__max_entries(self.ptr))

    @max_entries.setter
    def max_entries(self, n: int) -> None:
        self.owner.check_not_loaded("set max_entries")
        check_int(f"map {self.name}: set max_entries",
                  lambda: lib().bpf_map__set_max_entries(self.ptr, n))

    @property
    def map_flags(self) -> int:
        """The map's flags (BPF_F_*)."""
        return int(lib().bpf_map__map_flags(self.ptr))


def _free(state: dict[str, Any]) -> None:
    """Free everything of one object (finalizer: must not reference the object).

    Buffers and links go first (newest first), then the object and its fds.
    """
    natives: list[Any] = state["natives"]
    while natives:
        natives.pop().close()
    ptr, state["ptr"] = state["ptr"], None
    if ptr is not None:
        lib().bpf_object__close(ptr)


class LibbpfObject:
    """An opened (and later loaded) BPF ELF object."""

    def __init__(self, data: bytes, name: str) -> None:
        L = lib()
        _log.install()
        self.name = name
        self._data = ffi.from_buffer(bytes(data))  # libbpf copies it, but keep it alive
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        cname = ffi.new("char[]", c_bytes(name))
        opts.object_name = cname
        # Our own buffer for the verifier log: libbpf then leaves it to us instead of
        # printing it (kernels >= 6.4 keep the log's tail, where the error is, when
        # it overflows).  Dropped after load.
        self._kernel_log: Any = ffi.new("char[]", KERNEL_LOG_SIZE)
        opts.kernel_log_buf = self._kernel_log
        opts.kernel_log_size = KERNEL_LOG_SIZE
        ptr = check_ptr(f"open BPF object {name}",
                        lambda: L.bpf_object__open_mem(self._data, len(self._data), opts))
        self.loaded = False
        self._state: dict[str, Any] = {"ptr": ptr, "natives": []}
        self._finalizer = weakref.finalize(self, _free, self._state)
        self.programs: dict[str, Program] = {}
        prog = L.bpf_object__next_program(ptr, ffi.NULL)
        while prog != ffi.NULL:
            p = Program(prog, self)
            self.programs[p.name] = p
            prog = L.bpf_object__next_program(ptr, prog)
        self.maps: dict[str, MapPtr] = {}
        m = L.bpf_object__next_map(ptr, ffi.NULL)
        while m != ffi.NULL:
            mp = MapPtr(m, self)
            self.maps[mp.name] = mp
            m = L.bpf_object__next_map(ptr, m)

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._state["ptr"] is None

    def check_open(self) -> None:
        """Raise if the object has been closed."""
        if self.closed:
            raise RuntimeBpfError(f"BPF object {self.name} is closed")

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

    def load(self) -> None:
        """Load maps and programs into the kernel (BpfError with the verifier log on failure)."""
        self.check_not_loaded("load again")
        ptr = self._state["ptr"]
        self._fix_perf_array_sizes()
        try:
            check_int(f"load BPF object {self.name}", lambda: lib().bpf_object__load(ptr))
        except BpfError as e:
            verifier = ffi.string(self._kernel_log).decode(errors="replace").rstrip("\n")
            if verifier:
                e.verifier_log = verifier.split("\n")
                e.log.extend(["-- kernel log (verifier) --", *e.verifier_log])
                e.strerror = f"{e.strerror}\nkernel log (last lines):\n" + "\n".join(
                    e.verifier_log[-VERIFIER_TAIL:])
            raise
        finally:
            self._kernel_log = None  # libbpf only uses it during load
        self.loaded = True

    def _fix_perf_array_sizes(self) -> None:
        """Give perf event arrays 4-byte keys and values before they are created.

        An object may declare ``__type(value, struct event)`` on a perf event array
        to name its record type (as cilium/ebpf allows); the kernel wants 4-byte
        keys and values (CPU index -> perf fd), and libbpf 1.1 passes the declared
        sizes through, so creation would fail with EINVAL.
        """
        L = lib()
        for mp in self.maps.values():
            if mp.map_type != PERF_EVENT_ARRAY:
                continue
            for what, get, set_ in (("key", L.bpf_map__key_size, L.bpf_map__set_key_size),
                                    ("value", L.bpf_map__value_size, L.bpf_map__set_value_size)):
                if get(mp.ptr) != 4:
                    check_int(f"set {what} size of map {mp.name}",
                              lambda: set_(mp.ptr, 4))  # noqa: B023 - called at once

    def attach(self) -> list[Link]:
        """Attach every loaded program libbpf can attach from its section name."""
        self.check_loaded()
        return [p.attach() for p in self.programs.values()
                if p.autoload and p.autoattach and _auto_attachable(p.section)]

    def find_map(self, name: str) -> MapPtr | None:
        """The map called ``name``, or the internal map of ELF section ``name`` (".bss")."""
        self.check_open()
        ptr = lib().bpf_object__find_map_by_name(self._state["ptr"], c_bytes(name))
        if ptr == ffi.NULL:
            return self.maps.get(name)
        for m in self.maps.values():
            if m.ptr == ptr:
                return m
        return None

    def own(self, native: Any) -> None:
        """Close ``native`` (link, perf/ring buffer, mmap: anything with close()) when this
        object is closed; nothing owned may reference the object."""
        self._state["natives"].append(native)

    def disown(self, native: Any) -> None:
        """Forget ``native`` (its user freed it)."""
        natives: list[Any] = self._state["natives"]
        for i, n in enumerate(natives):
            if n is native:
                del natives[i]
                break

    def close(self) -> None:
        """Free buffers, destroy links, close the object (idempotent)."""
        for p in self.programs.values():
            p.links.clear()
        self._finalizer()


def _auto_attachable(section: str) -> bool:
    """Sections libbpf cannot attach without a target (xdp, tc, socket filters...)."""
    manual = ("xdp", "tc", "classifier", "action", "socket", "sk_", "cgroup", "flow_dissector",
              "lwt_", "sockops", "sk_skb", "sk_msg", "perf_event", "syscall", "struct_ops")
    return not section.startswith(manual)
