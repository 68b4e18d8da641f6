"""Maps whose values are BPF objects: PROG_ARRAY (tail calls) and ARRAY_OF_MAPS /
HASH_OF_MAPS (map-in-map).

User space writes a program or map *object* (its fd goes to the kernel) and reads
back what the kernel gives: the id of the program or map in the slot.  ``lookup``
turns that id back into the object when it is one of this BPF object's programs
or maps; ``lookup_id`` gives the id itself (for programs or maps from elsewhere).
"""

from __future__ import annotations

import struct
from typing import Any, TypeVar

from btfgen.runtime.bpfobj import MapPtr, Program
from btfgen.runtime.codec import IntCodec
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.maps import KeyedMap, MapArgumentError, MapBase, object_id, wrapper_of
from btfgen.runtime.protocols import Codec

K = TypeVar("K")
T = TypeVar("T")

_U32 = struct.Struct("<I")


class _FdValueMap(KeyedMap[K, T]):
    """Values written as fds, read back as ids."""

    #: What a value is, for messages.
    VALUE = "object"

    def __init__(self, handle: MapPtr, key: Codec[K]) -> None:
        super().__init__(handle, key, IntCodec("<I"))

    def _fd_of(self, value: Any) -> int:
        raise NotImplementedError

    def _object_with_id(self, ident: int) -> T | None:
        raise NotImplementedError

    def _encode_value(self, value: T) -> bytes:
        fd = self._fd_of(value)
        if fd < 0:
            raise MapArgumentError(f"map {self.name}: value {value!r} is not loaded (no fd)")
        return _U32.pack(fd)

    def _decode_value(self, buf: Any) -> T:
        ident = _U32.unpack_from(buf)[0]
        found = self._object_with_id(ident)
        if found is None:
            raise RuntimeBpfError(
                f"map {self.name}: holds {self.VALUE} id {ident}, which is not one of object "
                f"{self._h.owner.name}'s; read it with lookup_id()")
        return found

    def lookup_id(self, key: K) -> int | None:
        """The kernel id of the program/map at ``key`` (None when the slot is empty)."""
        raw = self._lookup_raw(key)
        return None if raw is None else int(_U32.unpack_from(raw)[0])


class ProgArrayMap(_FdValueMap[int, Program]):
    """BPF_MAP_TYPE_PROG_ARRAY: ``jmp[i] = skel.progs.handler`` for ``bpf_tail_call``."""

    VALUE = "program"

    def __init__(self, handle: MapPtr) -> None:
        super().__init__(handle, IntCodec("<I"))

    def _fd_of(self, value: Any) -> int:
        if not isinstance(value, Program):
            raise MapArgumentError(f"map {self.name}: value must be a Program "
                                   f"(skel.progs.<name>), got {type(value).__name__}")
        return value.fd

    def _object_with_id(self, ident: int) -> Program | None:
        for p in self._h.owner.programs.values():
            if p.fd >= 0 and object_id(p.fd, f"program {p.name}") == ident:
                return p
        return None


class MapOfMaps(_FdValueMap[K, MapBase]):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS / HASH_OF_MAPS: ``outer[k] = skel.maps.inner``; lookup
    gives the same typed map object back for maps of this object."""

    VALUE = "map"

    def _fd_of(self, value: Any) -> int:
        if not isinstance(value, MapBase):
            raise MapArgumentError(f"map {self.name}: value must be a map (skel.maps.<name>), "
                                   f"got {type(value).__name__}")
        return value.fd

    def _object_with_id(self, ident: int) -> MapBase | None:
        for m in self._h.owner.maps.values():
            if m.fd >= 0 and object_id(m.fd, f"map {m.name}") == ident:
                return wrapper_of(m)
        return None


__all__ = ["ProgArrayMap", "MapOfMaps"]
