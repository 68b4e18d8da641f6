"""Links: what attaching a program makes, and what detaches it.

A :class:`Link` wraps one *part* (a ``struct bpf_link``, a raw link fd, a tc
filter, a socket filter, or a group of these, e.g. one perf event link per
CPU).  Links made through a skeleton are owned by its object: ``destroy()`` on
the skeleton (or dropping it) detaches them; ``link.destroy()`` detaches one
early.  :meth:`Link.open_pinned` opens a link pinned in bpffs, owned by the
returned Link alone.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.codec import Record
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.native import (
    Native,
    ObjectCore,
    c_bytes,
    c_name,
    check_int,
    check_ptr,
    take,
)

if TYPE_CHECKING:
    from btfgen.runtime.program import Program

ffi.cdef("""
struct bpf_link *bpf_link__open(const char *path);
int bpf_link__pin(struct bpf_link *link, const char *path);
int bpf_link__unpin(struct bpf_link *link);
const char *bpf_link__pin_path(const struct bpf_link *link);
int bpf_obj_pin(int fd, const char *pathname);
int bpf_iter_create(int link_fd);
""")


class Part:
    """One native attachment: closed at most once, in the process that made it."""

    def __init__(self) -> None:
        self._pid = os.getpid()

    @property
    def alive(self) -> bool:
        """False once closed."""
        raise NotImplementedError

    @property
    def fd(self) -> int:
        """The link fd (-1 when the attachment has none, or once closed)."""
        return -1

    def close(self) -> None:
        """Detach (idempotent)."""
        raise NotImplementedError

    def pin(self, path: str) -> None:
        """Pin in bpffs at ``path``."""
        fd = self.fd
        if fd < 0:
            raise RuntimeBpfError(f"{type(self).__name__} has no link fd to pin")
        check_int(f"pin link at {path}", lambda: lib().bpf_obj_pin(fd, path.encode()))


class BpfLinkPart(Part):
    """A libbpf ``struct bpf_link``."""

    def __init__(self, ptr: Any, has_fd: bool = True) -> None:
        super().__init__()
        self.native = Native(ptr, "bpf_link__destroy")
        self._has_fd = has_fd  # a USDT link is several uprobes: no fd of its own

    @property
    def alive(self) -> bool:
        return self.native.ptr is not None

    @property
    def fd(self) -> int:
        ptr = self.native.ptr
        return int(lib().bpf_link__fd(ptr)) if ptr is not None and self._has_fd else -1

    def close(self) -> None:
        self.native.close()

    def pin(self, path: str) -> None:
        ptr = self.native.ptr
        if ptr is None:
            raise RuntimeBpfError("link is destroyed")
        if not self._has_fd:
            raise RuntimeBpfError("a USDT link (several uprobes) cannot be pinned")
        check_int(f"pin link at {path}", lambda: lib().bpf_link__pin(ptr, path.encode()))

    def unpin(self) -> None:
        """Remove the pin this link made."""
        ptr = self.native.ptr
        if ptr is None:
            raise RuntimeBpfError("link is destroyed")
        check_int("unpin link", lambda: lib().bpf_link__unpin(ptr))

    @property
    def pin_path(self) -> str | None:
        """Where pin() put it (None when not pinned)."""
        ptr = self.native.ptr
        if ptr is None:
            return None
        p = lib().bpf_link__pin_path(ptr)
        return None if p == ffi.NULL else c_name(p)

    @property
    def handle(self) -> Any:
        """The ``struct bpf_link *``."""
        ptr = self.native.ptr
        if ptr is None:
            raise RuntimeBpfError("link is destroyed")
        return ptr


class FdPart(Part):
    """A link fd made by ``bpf_link_create`` (closing it detaches, unless pinned)."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    @property
    def alive(self) -> bool:
        return self._fd >= 0

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        fd = take(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)


class DetachPart(Part):
    """An attachment without a link fd (tc filter, socket filter): ``detach`` undoes it.

    In a forked child closing does nothing: the parent's attachment stays.
    """

    def __init__(self, detach: Callable[[], None]) -> None:
        super().__init__()
        self._detach: Callable[[], None] | None = detach

    @property
    def alive(self) -> bool:
        return self._detach is not None

    def close(self) -> None:
        detach = take(self, "_detach")
        if detach is not None and self._pid == os.getpid():
            detach()


class GroupPart(Part):
    """Several parts detached together (one perf event link per CPU)."""

    def __init__(self, parts: list[Part]) -> None:
        super().__init__()
        self.parts = parts

    @property
    def alive(self) -> bool:
        return any(p.alive for p in self.parts)

    @property
    def fd(self) -> int:
        return self.parts[0].fd if self.parts else -1

    def close(self) -> None:
        while self.parts:
            self.parts.pop().close()

    def pin(self, path: str) -> None:
        raise RuntimeBpfError(f"a link of {len(self.parts)} per-CPU links cannot be pinned "
                              "as one; pin link.parts[i] one by one")


R = TypeVar("R", bound=Record)


class Link:
    """An attachment of a program; ``destroy()`` detaches it (idempotent)."""

    def __init__(self, part: Part, program: Program | None = None,
                 core: ObjectCore | None = None, what: str = "") -> None:
        self._part = part
        self._core = core
        self._program = weakref.ref(program) if program is not None else None
        #: The program's name (kept when the program object is gone).
        self.program_name = program.name if program is not None else ""
        #: What was attached where, e.g. ``uprobe /bin/bash:readline``.
        self.what = what
        if core is None:  # not owned by an object: free it with this wrapper
            self._finalizer = weakref.finalize(self, part.close)

    @classmethod
    def open_pinned(cls, path: str | os.PathLike[str]) -> Link:
        """Open a link pinned in bpffs (libbpf ``bpf_link__open``); ``destroy()``
        closes this process's reference, the pin keeps the attachment."""
        p = os.fspath(path)
        ptr = check_ptr(f"open pinned link {p}", lambda: lib().bpf_link__open(c_bytes(p)))
        return cls(BpfLinkPart(ptr), what=f"pinned at {p}")

    @property
    def program(self) -> Program:
        """The program this link attaches."""
        prog = self._program() if self._program is not None else None
        if prog is None:
            raise RuntimeBpfError(f"the program of link {self.what or '?'} is gone "
                                  "(opened from a pin, or its skeleton was dropped)")
        return prog

    @property
    def alive(self) -> bool:
        """False once destroyed (or its object closed)."""
        return self._part.alive

    @property
    def fd(self) -> int:
        """The link's file descriptor (-1 once destroyed, or for attachments without one)."""
        return self._part.fd

    @property
    def parts(self) -> list[Link]:
        """The per-CPU links of a perf event link (else ``[self]``)."""
        if isinstance(self._part, GroupPart):
            return [Link(p, None, self._core, self.what) for p in self._part.parts]
        return [self]

    @property
    def handle(self) -> Any:
        """The ``struct bpf_link *`` in :mod:`btfgen.runtime.libbpf`'s ffi."""
        if not isinstance(self._part, BpfLinkPart):
            raise RuntimeBpfError(f"link {self.what} is not a libbpf bpf_link")
        return self._part.handle

    def _check(self) -> None:
        if not self._part.alive:
            raise RuntimeBpfError(f"link {self.what or self.program_name} is destroyed")

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin the link in bpffs: it stays attached after this process exits."""
        self._check()
        self._part.pin(os.fspath(path))

    def unpin(self) -> None:
        """Remove the pin made by :meth:`pin` (the link stays while this Link lives)."""
        self._check()
        if not isinstance(self._part, BpfLinkPart):
            raise RuntimeBpfError(f"link {self.what} was not pinned by libbpf; remove the file")
        self._part.unpin()

    def read(self) -> bytes:
        """Run an iterator link once: everything its program wrote (``bpf_iter_create``)."""
        self._check()
        fd = self._part.fd
        ifd = check_int(f"create iterator of {self.what}", lambda: lib().bpf_iter_create(fd))
        chunks = []
        try:
            while True:
                chunk = os.read(ifd, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(ifd)
        return b"".join(chunks)

    def records(self, cls: type[R]) -> list[R]:
        """:meth:`read`, cut into ``cls`` records (a generated record class)."""
        size = int(cls.SIZE)
        data = self.read()
        if len(data) % size:
            raise RuntimeBpfError(f"iterator {self.what} wrote {len(data)} bytes, not a "
                                  f"multiple of {cls.__name__}.SIZE = {size}")
        return [cls.from_bytes(data, off) for off in range(0, len(data), size)]

    def destroy(self) -> None:
        """Detach and free the link (idempotent)."""
        if self._core is not None:
            self._core.disown(self._part)
        self._part.close()
        prog = self._program() if self._program is not None else None
        if prog is not None:
            prog._forget(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Link) and other._part is self._part

    def __hash__(self) -> int:
        return id(self._part)

    def __repr__(self) -> str:
        state = f"fd={self.fd}" if self.alive else "destroyed"
        return f"<Link {self.program_name or '?'} {self.what} {state}>"
