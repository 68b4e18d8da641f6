"""Local storage maps: SK_STORAGE, TASK_STORAGE, INODE_STORAGE, CGRP_STORAGE.

Their keys are objects the kernel names by a file descriptor of this process: a
socket (``sk_storage``), a pidfd (``task_storage``: ``os.pidfd_open(pid)``), an
open file (``inode_storage``), a cgroup directory (``cgrp_storage``).  A key is
an fd or anything with ``fileno()``.  The kernel cannot iterate these maps.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Protocol, TypeVar, Union

from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.codec import Buffer, Codec
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.maps import KeyedMap

V = TypeVar("V")


class HasFileno(Protocol):
    """A socket, file or anything else with ``fileno()``."""

    def fileno(self) -> int: ...


FdLike = Union[int, HasFileno]


class FdKeyCodec(Codec[FdLike]):
    """A local storage key: the fd of the socket/pidfd/file/cgroup, as a C int."""

    size = 4
    _struct = struct.Struct("<i")

    def decode(self, buf: Buffer, offset: int = 0) -> FdLike:
        raise RuntimeBpfError("local storage keys are fds of this process; they cannot be "
                              "read back")

    def encode(self, value: FdLike) -> bytes:
        fd = value if isinstance(value, int) else value.fileno()
        return self._struct.pack(fd)

    def describe(self) -> str:
        return "an fd (int) or an object with fileno()"


class LocalStorageMap(KeyedMap[FdLike, V]):
    """Per-object storage: ``storage[sock] = value``, ``storage[pidfd]``, ``del storage[f]``."""

    def __init__(self, handle: MapPtr, value: Codec[V]) -> None:
        super().__init__(handle, FdKeyCodec(), value)

    def keys(self) -> Iterator[FdLike]:
        """Not possible: the kernel cannot list the objects that have storage."""
        raise RuntimeBpfError(f"map {self.name}: local storage maps cannot be iterated; look "
                              "values up by socket, pidfd, file or cgroup fd")


__all__ = ["LocalStorageMap", "FdKeyCodec", "FdLike"]
