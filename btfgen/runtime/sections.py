"""Typed views of global data sections (``.rodata``, ``.data``, ``.bss``, ``.data.*``...).

Before load, a section view reads and writes libbpf's initial image of the map
(``bpf_map__initial_value``), which load() copies into the kernel.  After load,
``.data``/``.bss`` views read and write the kernel's memory through an mmap of
the map; read-only sections (``.rodata*``, ``.kconfig``) can still be read
(through a read-only mmap) but writing raises :class:`ReadOnlyError`.

Generated skeletons subclass :class:`GlobalSection` with one typed property per
variable, built with :func:`var`.
"""

from __future__ import annotations

import difflib
import mmap
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.protocols import Codec

T = TypeVar("T")

BPF_F_RDONLY_PROG = 1 << 7
BPF_F_MMAPABLE = 1 << 10


class ReadOnlyError(RuntimeBpfError, AttributeError):
    """A read-only global (``.rodata``) was written after load."""


class _Mapping:
    """An mmap of a map's memory, closed with the object."""

    def __init__(self, mm: mmap.mmap) -> None:
        self.mm: mmap.mmap | None = mm

    def close(self) -> None:
        """Unmap (idempotent)."""
        mm, self.mm = self.mm, None
        if mm is not None:
            mm.close()


class GlobalSection:
    """The memory of one global data section, as raw bytes; subclasses add typed fields."""

    #: The ELF section this view is for (".bss", ".rodata.cst", ...).
    SECTION = ""

    #: The view's own attributes; any other name must be a global (or a class attribute).
    _STATE = frozenset({"_h", "_readonly", "_mm"})

    def __init__(self, handle: MapPtr, readonly: bool | None = None) -> None:
        if readonly is None:
            readonly = bool(handle.map_flags & BPF_F_RDONLY_PROG)
        self._h = handle
        self._readonly = readonly
        self._mm: _Mapping | None = None

    if not TYPE_CHECKING:  # hidden from type checkers, which then flag unknown names too
        def __setattr__(self, name: str, value: object) -> None:
            # A typo such as ``skel.rodata.targ_pidd = 1`` must not pass silently.
            if name not in self._STATE and not hasattr(type(self), name):
                raise AttributeError(self._unknown(name))
            object.__setattr__(self, name, value)

        def __getattr__(self, name: str) -> Any:
            # Only reached when normal lookup failed: the name is no global here.
            raise AttributeError(self._unknown(name))

    @classmethod
    def globals(cls) -> list[str]:
        """The attribute names of this section's typed globals."""
        return sorted({n for k in cls.__mro__ for n, v in vars(k).items() if isinstance(v, var)})

    def _unknown(self, name: str) -> str:
        section = self.SECTION or type(self).__name__
        known = self.globals()
        close = difflib.get_close_matches(name, known, n=3)
        if close:
            hint = "did you mean " + " or ".join(close) + "?"
        elif known:
            hint = "its globals: " + ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        else:
            hint = "it has no typed globals"
        return f"section {section} has no global {name!r}; {hint}"

    @property
    def size(self) -> int:
        """Size of the section in bytes."""
        return self._h.value_size

    def _buffer(self) -> Any:
        owner = self._h.owner
        owner.check_open()
        if owner.loaded:
            if self._mm is None or self._mm.mm is None:
                self._mm = self._map_kernel_memory()
            return self._mm.mm
        psize = ffi.new("size_t *")
        ptr = lib().bpf_map__initial_value(self._h.ptr, psize)
        if ptr == ffi.NULL:
            raise RuntimeBpfError(f"section {self.SECTION}: libbpf has no initial image")
        return memoryview(ffi.buffer(ptr, int(psize[0])))

    def _map_kernel_memory(self) -> _Mapping:
        if not self._h.map_flags & BPF_F_MMAPABLE:
            raise RuntimeBpfError(f"section {self.SECTION}: the kernel map is not mmapable "
                                  "(kernel < 5.5); cannot read globals after load")
        prot = mmap.PROT_READ if self._readonly else mmap.PROT_READ | mmap.PROT_WRITE
        m = _Mapping(mmap.mmap(self._h.fd, self._h.value_size, mmap.MAP_SHARED, prot))
        self._h.owner.own(m)  # the mapping pins the map: unmap when the object closes
        return m

    def read_bytes(self) -> bytes:
        """A copy of the whole section."""
        return bytes(self._buffer())

    def get(self, codec: Codec[T], offset: int) -> T:
        """Decode the variable at ``offset``."""
        return codec.decode(self._buffer(), offset)

    def set(self, name: str, codec: Codec[T], offset: int, value: T) -> None:
        """Encode ``value`` into the variable at ``offset``."""
        if self._readonly and self._h.owner.loaded:
            raise ReadOnlyError(f"{self.SECTION or self._h.name}.{name} is read-only after load()")
        data = codec.encode(value)
        buf = self._buffer()
        buf[offset:offset + len(data)] = data

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.SECTION} {self.size} bytes>"


class var(Generic[T]):  # noqa: N801 - used like a property
    """A typed global variable: ``pid_filter = var(I32, 0)`` in a section class."""

    def __init__(self, codec: Codec[T], offset: int) -> None:
        self.codec = codec
        self.offset = offset
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name.rstrip("_") if name.endswith("_") else name

    @overload
    def __get__(self, obj: None, objtype: type | None = None) -> var[T]: ...
    @overload
    def __get__(self, obj: GlobalSection, objtype: type | None = None) -> T: ...

    def __get__(self, obj: GlobalSection | None, objtype: type | None = None) -> T | var[T]:
        if obj is None:
            return self
        return obj.get(self.codec, self.offset)

    def __set__(self, obj: GlobalSection, value: T) -> None:
        obj.set(self.name, self.codec, self.offset, value)
