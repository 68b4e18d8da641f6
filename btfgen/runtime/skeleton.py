"""The base class of generated skeletons (``<CamelStem>Skel``).

A generated skeleton embeds its object's bytes and fills in typed namespaces in
:meth:`Skeleton._bind`: ``maps``, ``progs``, ``rodata``/``data``/``bss`` and
custom sections.  The life cycle is libbpf's: open -> (set rodata, max_entries,
autoload) -> load -> attach -> destroy::

    with ProbeSkel.open_and_load() as skel:
        skel.attach()
        pb = skel.maps.events.open_perf_buffer(print)
        while True:
            pb.poll(100)
"""

from __future__ import annotations

import os
from typing import ClassVar, TypeVar

from btfgen.runtime.bpfobj import LibbpfObject, Link, MapPtr, Program
from btfgen.runtime.errors import RuntimeBpfError

S = TypeVar("S", bound="Skeleton")

ObjectSource = bytes | bytearray | memoryview | str | os.PathLike[str]


class Skeleton:
    """Open/load/attach/destroy one BPF object; subclasses add typed attributes."""

    #: libbpf's object name (the stem of the .bpf.o).
    OBJECT_NAME: ClassVar[str] = "bpf"
    #: The embedded ELF object.
    OBJECT: ClassVar[bytes] = b""

    def __init__(self, obj: ObjectSource | None = None, *, pin_root: str | None = None) -> None:
        """Open the embedded object, or ``obj`` (a path or the ELF bytes); maps the
        object pins by name go under ``pin_root`` (default ``/sys/fs/bpf``)."""
        self._obj = LibbpfObject(self._read(obj), self.OBJECT_NAME, pin_root=pin_root)
        #: Links made by attach(), in order.
        self.links: list[Link] = []
        try:
            self._bind()
        except BaseException:
            self._obj.close()
            raise

    @classmethod
    def _read(cls, obj: ObjectSource | None) -> bytes:
        if obj is None:
            if not cls.OBJECT:
                raise RuntimeBpfError(f"{cls.__name__} has no embedded object; pass obj=")
            return cls.OBJECT
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        with open(obj, "rb") as f:
            return f.read()

    def _bind(self) -> None:
        """Create the typed namespaces (generated subclasses override)."""

    @classmethod
    def open(cls: type[S], obj: ObjectSource | None = None, *, pin_root: str | None = None) -> S:
        """Open (parse) the object; nothing is in the kernel yet."""
        return cls(obj, pin_root=pin_root)

    @classmethod
    def open_and_load(cls: type[S], obj: ObjectSource | None = None, *,
                      pin_root: str | None = None) -> S:
        """open() then load(); the object is closed again if load fails."""
        skel = cls(obj, pin_root=pin_root)
        try:
            skel.load()
        except BaseException:
            skel.destroy()
            raise
        return skel

    @property
    def obj(self) -> LibbpfObject:
        """The underlying libbpf object."""
        return self._obj

    @property
    def loaded(self) -> bool:
        """True after a successful load()."""
        return self._obj.loaded

    def load(self) -> None:
        """Create the maps and load the programs (BpfError with libbpf's log on failure)."""
        self._obj.load()

    def attach(self) -> list[Link]:
        """Attach every program libbpf can attach from its section name."""
        links = self._obj.attach()
        self.links.extend(links)
        return links

    def detach(self) -> None:
        """Destroy every link, keep programs and maps loaded."""
        for p in self._obj.programs.values():
            p.detach()
        self.links.clear()

    def destroy(self) -> None:
        """Free buffers, links, programs, maps and their fds (idempotent)."""
        self.links.clear()
        self._obj.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- helpers for generated _bind() --
    def _map(self, name: str) -> MapPtr:
        m = self._obj.find_map(name)
        if m is None:
            raise RuntimeBpfError(f"object {self.OBJECT_NAME} has no map {name!r}")
        return m

    def _prog(self, name: str) -> Program:
        p = self._obj.programs.get(name)
        if p is None:
            raise RuntimeBpfError(f"object {self.OBJECT_NAME} has no program {name!r}")
        return p


class Namespace:
    """A plain attribute holder for ``skel.maps``/``skel.progs`` (subclasses declare types)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(vars(self))}>"
