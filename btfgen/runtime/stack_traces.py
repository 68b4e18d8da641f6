"""BPF_MAP_TYPE_STACK_TRACE: stack ids (from ``bpf_get_stackid``) -> instruction pointers."""

from __future__ import annotations

import struct
from typing import Any

from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.codec import Buffer, Codec, IntCodec
from btfgen.runtime.errors import RuntimeBpfError
from btfgen.runtime.maps import KeyedMap
from btfgen.runtime.symbols import StackSymbolizer

#: map_flags bit: entries are build-id + offset records, not addresses.
BPF_F_STACK_BUILD_ID = 1 << 5


class StackCodec(Codec[list[int]]):
    """``__u64 ips[N]``, decoded up to the first zero (the kernel zero-fills the rest)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._struct = struct.Struct(f"<{size // 8}Q")

    def decode(self, buf: Buffer, offset: int = 0) -> list[int]:
        ips = self._struct.unpack_from(buf, offset)
        try:
            return list(ips[:ips.index(0)])
        except ValueError:  # a full stack
            return list(ips)

    def encode(self, value: list[int]) -> bytes:
        depth = self.size // 8
        if len(value) > depth:
            raise ValueError(f"{len(value)} addresses, the map holds {depth}")
        return self._struct.pack(*value, *[0] * (depth - len(value)))

    def describe(self) -> str:
        return f"a list of at most {self.size // 8} addresses (int)"


class StackTraceMap(KeyedMap[int, list[int]], StackSymbolizer):
    """Stack id -> the stack's instruction pointers, innermost first.

    ``value_size`` (8 bytes per frame; libbpf-tools use 127 frames) is settable
    before load.  Symbolizing the addresses is up to the caller (kernel
    addresses: ``/proc/kallsyms``).
    """

    def __init__(self, handle: MapPtr) -> None:
        super().__init__(handle, IntCodec("<I"), StackCodec(handle.value_size))

    @property
    def value_size(self) -> int:
        """Bytes per stack: 8 x the deepest stack kept (settable before load)."""
        return self._h.value_size

    @value_size.setter
    def value_size(self, size: int) -> None:
        self._h.owner.check_not_loaded(f"set the value size of map {self.name}")
        if size <= 0 or size % 8:
            raise ValueError(f"map {self.name}: value_size must be a positive multiple of 8 "
                             f"(8 bytes per frame), got {size}")
        self._h.value_size = size
        self.value_codec = StackCodec(self._h.value_size)
        self._vbuf_size = self._value_buffer_size()

    def _decode_value(self, buf: Any) -> list[int]:
        if self._h.map_flags & BPF_F_STACK_BUILD_ID:
            raise RuntimeBpfError(f"map {self.name}: stacks with BPF_F_STACK_BUILD_ID hold "
                                  "build ids, which this class does not decode")
        return super()._decode_value(buf)


__all__ = ["StackTraceMap", "StackCodec"]
