"""Maps whose values are BPF objects: PROG_ARRAY (tail calls) and ARRAY_OF_MAPS /
HASH_OF_MAPS (map-in-map).

User space writes a program or map *object* (its fd goes to the kernel) and reads
back what the kernel gives: the id of the program or map in the slot.  ``lookup``
turns that id back into the object when it is one of this BPF object's programs
or maps; ``lookup_id`` gives the id itself (for programs or maps from elsewhere).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, TypeVar

from btfgen.runtime.bpfobj import LibbpfObject, MapPtr
from btfgen.runtime.codec import IntCodec
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.maps import KeyedMap, MapArgumentError, MapBase, object_id, wrapper_of
from btfgen.runtime.program import Program
from btfgen.runtime.protocols import Codec
from btfgen.runtime.registry import object_of

K = TypeVar("K")
T = TypeVar("T")

_U32 = struct.Struct("<I")


class _FdValueMap(KeyedMap[K, T]):
    """Values written as fds, read back as ids."""

    #: What a value is, for messages.
    VALUE = "object"
    #: What a value must be, and how the user names one.
    KIND: type = object
    SPELLED = ""

    def __init__(self, handle: MapPtr, key: Codec[K]) -> None:
        super().__init__(handle, key, IntCodec("<I"))
        self._by_id: dict[int, T] = {}

    def _candidates(self) -> Iterable[tuple[str, Any, T]]:
        """(name, object with an fd, value to return) for each object of the owner."""
        raise NotImplementedError

    def _object(self) -> LibbpfObject:
        obj = object_of(self._h.owner)
        if obj is None:
            raise self._h.owner.closed_error()
        return obj

    def _encode_value(self, value: T) -> bytes:
        if not isinstance(value, self.KIND):
            raise MapArgumentError(f"map {self.name}: value must be a {self.VALUE} "
                                   f"({self.SPELLED}), got {type(value).__name__}")
        fd = int(value.fd)  # type: ignore[attr-defined]
        if fd < 0:
            raise MapArgumentError(f"map {self.name}: {self.VALUE} {value!r} is not loaded")
        return _U32.pack(fd)

    def _decode_value(self, buf: Any) -> T:
        ident = _U32.unpack_from(buf)[0]
        if ident not in self._by_id:  # ids never change: look them up once
            self._by_id = {object_id(h.fd, f"{self.VALUE} {name}"): v
                           for name, h, v in self._candidates() if h.fd >= 0}
        found = self._by_id.get(ident)
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

    VALUE, KIND, SPELLED = "program", Program, "skel.progs.<name>"

    def __init__(self, handle: MapPtr) -> None:
        super().__init__(handle, IntCodec("<I"))

    def _candidates(self) -> Iterable[tuple[str, Any, Program]]:
        return ((p.name, p, p) for p in self._object().programs.values())


class MapOfMaps(_FdValueMap[K, MapBase]):
    """BPF_MAP_TYPE_ARRAY_OF_MAPS / HASH_OF_MAPS: ``outer[k] = skel.maps.inner``; lookup
    gives the same typed map object back for maps of this object."""

    VALUE, KIND, SPELLED = "map", MapBase, "skel.maps.<name>"

    def _candidates(self) -> Iterable[tuple[str, Any, MapBase]]:
        return ((m.name, m, wrapper_of(m)) for m in self._object().maps.values())


__all__ = ["ProgArrayMap", "MapOfMaps"]
