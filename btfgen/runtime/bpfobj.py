"""A libbpf ``struct bpf_object``: its programs, maps and links.

:class:`LibbpfObject` owns everything opened through it: closing it destroys its
links, frees its perf/ring buffers and closes the object (and with it every
program and map fd).  A ``weakref.finalize`` does the same as soon as the last
reference to it goes (nothing of the object references it back), and at
interpreter exit, so nothing is left behind when the caller forgets.

The native layer is in :mod:`~btfgen.runtime.native`, programs in
:mod:`~btfgen.runtime.program`, links in :mod:`~btfgen.runtime.link`.
"""

from __future__ import annotations

import errno
import os
import re
import weakref
from typing import Any

from btfgen.runtime import _log, registry
from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.errors import BpfError, NotSupportedError
from btfgen.runtime.link import Link
from btfgen.runtime.map_types import PERF_EVENT_ARRAY
from btfgen.runtime.native import (
    ObjectCore,
    c_bytes,
    c_name,
    check_int,
    check_ptr,
    free_object,
)
from btfgen.runtime.program import Program, auto_attachable

__all__ = ["LibbpfObject", "MapPtr"]

#: Bytes for the kernel's verifier/BTF log during load.
KERNEL_LOG_SIZE = 1 << 20
#: Verifier log lines quoted in the exception message (all are in ``.verifier_log``).
VERIFIER_TAIL = 20
#: BPF_PROG_TYPE_TRACING, _EXT, _LSM: the programs that need BPF trampolines.
TRAMPOLINE_PROG_TYPES = (26, 28, 29)
#: The kernel's internal "not supported" errno, as BPF returns it.
ENOTSUPP = 524


class MapPtr:
    """A ``struct bpf_map`` of an object: the handle the map classes call through.

    ``ptr`` (and everything using it) raises once the object is closed, so a map
    used after ``destroy()`` raises a clear error instead of reading freed memory.
    """

    def __init__(self, ptr: Any, owner: ObjectCore) -> None:
        L = lib()
        self._ptr = ptr
        #: The object's shared state (load state, ownership of buffers and mmaps).
        self.owner = owner
        self.name: str = c_name(L.bpf_map__name(ptr))
        self.map_type: int = int(L.bpf_map__type(ptr))
        self.internal: bool = bool(L.bpf_map__is_internal(ptr))

    @property
    def ptr(self) -> Any:
        """The ``struct bpf_map *`` (raises once the object is closed)."""
        self.owner.check_open()
        return self._ptr

    #: The ``struct bpf_map *`` in :mod:`btfgen.runtime.libbpf`'s ffi.
    handle = ptr

    @property
    def fd(self) -> int:
        """The map fd after load (negative before)."""
        return int(lib().bpf_map__fd(self.ptr))

    @property
    def key_size(self) -> int:
        """sizeof the key."""
        return int(lib().bpf_map__key_size(self.ptr))

    @property
    def value_size(self) -> int:
        """sizeof the value (settable before load)."""
        return int(lib().bpf_map__value_size(self.ptr))

    @value_size.setter
    def value_size(self, n: int) -> None:
        self._set("value_size", lib().bpf_map__set_value_size, n)

    @property
    def max_entries(self) -> int:
        """max_entries (settable before load)."""
        return int(lib().bpf_map__max_entries(self.ptr))

    @max_entries.setter
    def max_entries(self, n: int) -> None:
        self._set("max_entries", lib().bpf_map__set_max_entries, n)

    @property
    def map_flags(self) -> int:
        """The map's flags (BPF_F_*)."""
        return int(lib().bpf_map__map_flags(self.ptr))

    def _set(self, what: str, call: Any, value: int) -> None:
        ptr = self.ptr
        self.owner.check_not_loaded(f"set {what}")
        check_int(f"map {self.name}: set {what}", lambda: call(ptr, value))

    def __repr__(self) -> str:
        return f"<MapPtr {self.name}>"


class LibbpfObject:
    """An opened (and later loaded) BPF ELF object.

    ``handle`` is the ``struct bpf_object *``; ``programs`` and ``maps`` its
    :class:`Program` and :class:`MapPtr` by name.  Every one of them raises a clear
    error once the object is closed.
    """

    def __init__(self, data: bytes, name: str, *, pin_root: str | None = None) -> None:
        """Open ``data`` (ELF bytes); maps declared ``LIBBPF_PIN_BY_NAME`` are pinned
        (or reused) under ``pin_root`` (libbpf's default: ``/sys/fs/bpf``)."""
        L = lib()
        _log.install()
        self.name = name
        self._data = ffi.from_buffer(bytes(data))  # libbpf copies it, but keep it alive
        opts = ffi.new("struct bpf_object_open_opts *")
        opts.sz = ffi.sizeof("struct bpf_object_open_opts")
        cname = ffi.new("char[]", c_bytes(name))
        opts.object_name = cname
        root = ffi.new("char[]", c_bytes(pin_root)) if pin_root is not None else ffi.NULL
        opts.pin_root_path = root
        # Our own buffer for the verifier log: libbpf then leaves it to us instead of
        # printing it (kernels >= 6.4 keep the log's tail, where the error is, when
        # it overflows).  Dropped after load.
        self._kernel_log: Any = ffi.new("char[]", KERNEL_LOG_SIZE)
        opts.kernel_log_buf = self._kernel_log
        opts.kernel_log_size = KERNEL_LOG_SIZE
        ptr = check_ptr(f"open BPF object {name}",
                        lambda: L.bpf_object__open_mem(self._data, len(self._data), opts))
        #: The state programs, maps, links and buffers share (never references them back).
        self.core = ObjectCore(ptr, name)
        registry.remember(self.core, self)
        self._finalizer = weakref.finalize(self, free_object, self.core.state)
        self.programs: dict[str, Program] = {}
        prog = L.bpf_object__next_program(ptr, ffi.NULL)
        while prog != ffi.NULL:
            p = Program(prog, self.core)
            self.programs[p.name] = p
            prog = L.bpf_object__next_program(ptr, prog)
        self.maps: dict[str, MapPtr] = {}
        m = L.bpf_object__next_map(ptr, ffi.NULL)
        while m != ffi.NULL:
            mp = MapPtr(m, self.core)
            self.maps[mp.name] = mp
            m = L.bpf_object__next_map(ptr, m)

    @property
    def handle(self) -> Any:
        """The ``struct bpf_object *`` in :mod:`btfgen.runtime.libbpf`'s ffi."""
        return self.core.ptr

    @property
    def loaded(self) -> bool:
        """True after a successful load()."""
        return self.core.loaded

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self.core.closed

    def check_open(self) -> None:
        """Raise if the object has been closed."""
        self.core.check_open()

    def check_loaded(self) -> None:
        """Raise unless load() has succeeded."""
        self.core.check_loaded()

    def check_not_loaded(self, what: str) -> None:
        """Raise if already loaded (for settings that only apply before load)."""
        self.core.check_not_loaded(what)

    def load(self) -> None:
        """Load maps and programs into the kernel (BpfError with the verifier log on failure)."""
        self.check_not_loaded("load again")
        ptr = self.core.ptr
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
            refused = self._trampoline_refused(e)
            if refused is not None:
                raise refused from e
            raise
        finally:
            self._kernel_log = None  # libbpf only uses it during load
        self.core.loaded = True

    def _trampoline_refused(self, e: BpfError) -> NotSupportedError | None:
        """One sentence for a kernel without BPF trampolines (fentry/fexit/LSM refused
        to root with EPERM or ENOTSUPP), naming the program that failed; else None."""
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, ENOTSUPP) or os.geteuid() != 0:
            return None
        for line in e.log:
            m = re.match(r"libbpf: prog '(.+)': BPF program load failed", line)
            prog = self.programs.get(m.group(1)) if m else None
            if (prog is not None and prog.type in TRAMPOLINE_PROG_TYPES
                    and not prog.section.startswith("iter")):  # iterators need no trampoline
                err = NotSupportedError(
                    f"program {prog.name} ({prog.section}): this kernel refuses fentry, fexit, "
                    f"fmod_ret, freplace and LSM programs ({os.strerror(e.errno)}); set its "
                    "autoload = False to load the others")
                err.log, err.verifier_log = e.log, e.verifier_log
                return err
        return None

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
        """Attach as libbpf's skeleton does; the links made by this call.

        Skips programs not loaded, with ``autoattach`` False, whose section names no
        target (bare ``SEC("uprobe")``, ``SEC("xdp")``...) or that already have a
        link.  If one fails, the links this call made are destroyed and the error
        (naming the program) is raised.
        """
        self.check_loaded()
        made: list[Link] = []
        for p in self.programs.values():
            if p.links or not (p.autoload and p.autoattach and auto_attachable(p.section)):
                continue
            try:
                made.append(p.attach())
            except BaseException:
                for link in reversed(made):
                    link.destroy()
                raise
        return made

    def find_map(self, name: str) -> MapPtr | None:
        """The map called ``name``, or the internal map of ELF section ``name`` (".bss")."""
        ptr = lib().bpf_object__find_map_by_name(self.core.ptr, c_bytes(name))
        if ptr == ffi.NULL:
            return self.maps.get(name)
        for m in self.maps.values():
            if m.ptr == ptr:
                return m
        return None

    def own(self, native: Any) -> None:
        """Close ``native`` (link, perf/ring buffer, mmap: anything with close()) when this
        object is closed; nothing owned may reference the object."""
        self.core.own(native)

    def disown(self, native: Any) -> None:
        """Forget ``native`` (its user freed it)."""
        self.core.disown(native)

    def close(self) -> None:
        """Free buffers, destroy links, close the object (idempotent)."""
        for p in self.programs.values():
            p.links.clear()
        self._finalizer()
