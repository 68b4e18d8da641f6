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
import weakref
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, TypeVar, overload

from btfgen.runtime.bpfobj import LibbpfObject, MapPtr
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.link import Link
from btfgen.runtime.program import Program

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
        #: Every link of every program, however made: ``skel.links.<prog>`` is the
        #: list of that program's links; iterating gives them all.
        self.links = SkeletonLinks(self)
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
    def handle(self) -> Any:
        """The ``struct bpf_object *`` in :mod:`btfgen.runtime.libbpf`'s ffi."""
        return self._obj.handle

    @property
    def loaded(self) -> bool:
        """True after a successful load()."""
        return self._obj.loaded

    def load(self) -> None:
        """Create the maps and load the programs (BpfError with libbpf's log on failure)."""
        self._obj.load()

    def attach(self) -> list[Link]:
        """Attach as libbpf's skeleton does; returns the links this call made.

        Programs with ``autoattach = False``, not loaded, already attached, or whose
        section names no target (bare ``SEC("uprobe")``, ``SEC("usdt")``, ``SEC("xdp")``...)
        are skipped.  If one fails, the links made by this call are destroyed and
        the error, naming the program, is raised.
        """
        return self._obj.attach()

    def detach(self) -> None:
        """Destroy every link, keep programs and maps loaded."""
        for p in self._obj.programs.values():
            p.detach()

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for any perf or ring buffer
        opened on this skeleton, then deliver what each has; the record count
        (libbpf's ``ring_buffer__add`` + ``ring_buffer__poll``, for both kinds)."""
        from btfgen.runtime.reader import poll_all

        return poll_all(self._obj.core, timeout_ms)

    def destroy(self) -> None:
        """Free buffers, links, programs, maps and their fds (idempotent).

        A skeleton dropped without destroy() does the same when its last reference
        goes, as a file object closes."""
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


class SkeletonLinks(Sequence[Link]):
    """``skel.links``: ``skel.links.<prog>`` is that program's list of live links;
    as a sequence, every link of the skeleton in program order."""

    def __init__(self, skel: Skeleton) -> None:
        self._skel = weakref.ref(skel)  # no cycle: dropping the skeleton frees it

    def _programs(self) -> list[Program]:
        skel = self._skel()
        return list(skel.obj.programs.values()) if skel is not None else []

    def __getattr__(self, name: str) -> list[Link]:
        skel = self._skel()
        if skel is not None:
            progs = getattr(skel, "progs", None)
            prog = getattr(progs, name, None) if progs is not None else None
            if prog is None:
                prog = skel.obj.programs.get(name)
            if isinstance(prog, Program):
                return prog.links
        raise AttributeError(f"skeleton has no program {name!r}")

    def _all(self) -> list[Link]:
        return [link for p in self._programs() for link in p.links]

    @overload
    def __getitem__(self, i: int) -> Link: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Link]: ...

    def __getitem__(self, i: int | slice) -> Link | Sequence[Link]:
        return self._all()[i]

    def __len__(self) -> int:
        return len(self._all())

    def __iter__(self) -> Iterator[Link]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple, SkeletonLinks)):
            return self._all() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<links {self._all()!r}>"


class Namespace:
    """A plain attribute holder for ``skel.maps``/``skel.progs`` (subclasses declare types)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {', '.join(vars(self))}>"
