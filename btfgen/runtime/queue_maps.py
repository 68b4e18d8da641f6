"""Maps without keys: QUEUE, STACK and BLOOM_FILTER.

``QueueMap.pop()`` gives the oldest value, ``StackMap.pop()`` the newest; both
return ``None`` when the map is empty (a value is never ``None``), as does
``peek()``.  A ``BloomFilterMap`` answers ``value in bloom`` with "maybe" (True)
or "certainly not" (False).
"""

from __future__ import annotations

import errno
from typing import Any, Generic, TypeVar

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.errors import error_class
from btfgen.runtime.maps import ANY, EXIST, MapBase, encode_arg
from btfgen.runtime.protocols import Codec

V = TypeVar("V")


class _ValueMap(MapBase, Generic[V]):
    """A keyless map: values go through ``value`` (a codec)."""

    _FULL_HINT = ""

    def __init__(self, handle: MapPtr, value: Codec[V]) -> None:
        super().__init__(handle)
        if value.size != handle.value_size:
            raise TypeError(f"map {self.name}: value codec is {value.size} bytes, map value "
                            f"is {handle.value_size}")
        self.value_codec = value

    def _value(self, value: V) -> Any:
        return ffi.from_buffer(encode_arg(self.name, "value", self.value_codec, value))

    def _push(self, value: V, flags: int) -> None:
        self._loaded()
        vb = self._value(value)
        rc = lib().bpf_map__update_elem(self._h.ptr, ffi.NULL, 0, vb, len(vb), flags)
        if rc < 0:
            full = (f" (the map is full: max_entries {self._h.max_entries}"
                    f"{self._FULL_HINT})" if rc == -errno.E2BIG else "")
            raise error_class(rc)(f"map {self.name}: push{full}", rc)


class _QueueLike(_ValueMap[V]):
    _FULL_HINT = "; push(value, overwrite=True) makes room"

    def push(self, value: V, *, overwrite: bool = False) -> None:
        """Add ``value``; when the map is full, BpfError (E2BIG), or with
        ``overwrite=True`` the value pop() would give next is dropped to make room."""
        self._push(value, EXIST if overwrite else ANY)

    def _take(self, fn: str, what: str) -> V | None:
        self._loaded()
        size = self._h.value_size
        vb = ffi.new("char[]", size)
        rc = getattr(lib(), fn)(self._h.ptr, ffi.NULL, 0, vb, size, 0)
        if rc == -errno.ENOENT:
            return None
        if rc < 0:
            raise error_class(rc)(f"map {self.name}: {what}", rc)
        return self.value_codec.decode(ffi.buffer(vb))

    def pop(self) -> V | None:
        """Remove and return the next value, or None when the map is empty."""
        return self._take("bpf_map__lookup_and_delete_elem", "pop")

    def peek(self) -> V | None:
        """The value pop() would return, left in the map; None when empty."""
        return self._take("bpf_map__lookup_elem", "peek")

    def pop_all(self) -> list[V]:
        """Pop until empty: every value, in pop() order."""
        out = []
        while (v := self.pop()) is not None:
            out.append(v)
        return out


class QueueMap(_QueueLike[V]):
    """BPF_MAP_TYPE_QUEUE: first in, first out."""


class StackMap(_QueueLike[V]):
    """BPF_MAP_TYPE_STACK: last in, first out."""


class BloomFilterMap(_ValueMap[V]):
    """BPF_MAP_TYPE_BLOOM_FILTER: ``push`` values, ask ``value in bloom``."""

    def push(self, value: V) -> None:
        """Add ``value`` to the filter (values cannot be removed)."""
        self._push(value, ANY)

    def __contains__(self, value: object) -> bool:
        """False: ``value`` was certainly never pushed; True: it probably was."""
        self._loaded()
        vb = self._value(value)  # type: ignore[arg-type]
        rc = lib().bpf_map__lookup_elem(self._h.ptr, ffi.NULL, 0, vb, len(vb), 0)
        if rc == -errno.ENOENT:
            return False
        if rc < 0:
            raise error_class(rc)(f"map {self.name}: lookup", rc)
        return True


__all__ = ["QueueMap", "StackMap", "BloomFilterMap"]
