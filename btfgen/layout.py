"""Memory layout facts that BTF does not state directly.

BTF records sizes and member offsets but not attributes: whether a struct was
``__attribute__((packed))`` or had ``aligned(N)`` must be inferred, the way
libbpf's ``btf_dump.c`` does.  The rules:

* a struct is packed when a non-bitfield member is not naturally aligned, or
  when its size is not a multiple of its members' largest alignment;
* a packed struct's alignment is 1;
* padding is whatever lies between members (and after the last one) that the
  natural layout rules would not have put there.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from btfgen.btf_model import Btf, Composite, Kind, Struct, Union
from btfgen.errors import BtfError


def is_packed(btf: Btf, t: Composite) -> bool:
    """Whether ``t`` must have been declared packed for BTF's offsets/size to hold."""
    max_align = 1
    for m in t.members:
        align = type_align(btf, m.type_id)
        bf = btf.member_bitfield(t, m)
        if bf.size == 0 and m.bit_offset % (8 * align):
            return True
        max_align = max(max_align, align)
    return t.size % max_align != 0


def type_align(btf: Btf, type_id: int) -> int:
    """Effective alignment of a type: natural, except 1 for inferred-packed structs."""
    return _align_cached(btf, type_id)


@lru_cache(maxsize=65536)
def _align_cached(btf: Btf, type_id: int) -> int:
    t = btf.skip_modifiers(type_id)
    if t.kind in (Kind.STRUCT, Kind.UNION):
        assert isinstance(t, (Struct, Union))
        if is_packed(btf, t):
            return 1
        return max((type_align(btf, m.type_id) for m in t.members), default=1)
    if t.kind == Kind.ARRAY:
        return type_align(btf, t.type_id)  # type: ignore[union-attr]
    if t.kind == Kind.PTR:
        return 8
    if t.kind in (Kind.INT, Kind.FLOAT, Kind.ENUM, Kind.ENUM64):
        return min(t.size, 8) or 1  # type: ignore[union-attr]
    raise BtfError(f"type id {type_id} ({t.kind.name}) has no alignment")


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes the natural layout would not account for: explicit padding."""

    byte_offset: int
    size: int


def natural_offset(offset: int, align: int) -> int:
    """``offset`` rounded up to a multiple of ``align``."""
    return (offset + align - 1) // align * align


def struct_gaps(btf: Btf, t: Struct) -> list[Gap]:
    """Padding a C compiler would not insert by itself between ``t``'s
    non-bitfield members and at its end, given the inferred packing.

    Used to emit explicit ``char __pad[N]`` members so that cffi (or any C
    compiler) reproduces BTF's layout exactly, e.g. for ``aligned(N)`` members.
    """
    packed = is_packed(btf, t)
    gaps: list[Gap] = []
    end = 0  # byte just past the previous member's storage
    max_align = 1
    for m in t.members:
        bf = btf.member_bitfield(t, m)
        if bf.size:
            end = max(end, (bf.bit_offset + bf.size + 7) // 8)
            continue
        align = 1 if packed else type_align(btf, m.type_id)
        max_align = max(max_align, align)
        start = m.bit_offset // 8
        expected = natural_offset(end, align)
        if start > expected:
            gaps.append(Gap(end, start - end))
        size = btf.size_of(m.type_id)
        end = max(end, start + size)
    tail = natural_offset(end, max_align)
    if t.size > tail:
        gaps.append(Gap(end, t.size - end))
    return gaps
