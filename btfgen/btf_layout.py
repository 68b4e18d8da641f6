"""Memory layout facts that BTF does not state directly.

BTF records sizes and member bit offsets but not the attributes that produced
them (``__attribute__((packed))``, ``aligned(N)``, unnamed bitfields).  To
re-declare a struct so that a C compiler (or cffi) reproduces BTF's layout
exactly, we simulate the compiler's record layout (the SysV/Itanium rules that
clang and gcc use for both x86-64 and BPF) member by member and compare it
with BTF:

* where the compiler would place a member *before* its BTF offset, explicit
  padding is inserted (this covers ``aligned(N)`` members, unnamed bitfields
  and tail padding of over-aligned records);
* where it would place a member *after* its BTF offset, or make the record
  larger than BTF's size, the record must have been packed: it is laid out
  again with ``packed`` (every member 1-aligned) and padded explicitly.

:func:`plan_record` gives the resulting declaration plan; :func:`type_align`
the alignment a type has *as re-declared* (1 for a packed record).
"""

from __future__ import annotations

from dataclasses import dataclass
from weakref import WeakKeyDictionary

from btfgen.btf_model import Btf, Composite, Kind, Member, Struct, Union
from btfgen.errors import BtfError

#: Padding is made of unnamed bitfields no wider than this (``long: 64``).
PAD_UNIT_BITS = 64


def natural_offset(offset: int, align: int) -> int:
    """``offset`` rounded up to a multiple of ``align``."""
    return (offset + align - 1) // align * align


@dataclass(frozen=True, slots=True)
class Gap:
    """Bytes the natural layout would not account for: explicit padding."""

    byte_offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Pad:
    """Explicit padding in a record plan, from bit ``start`` up to bit ``end``.

    In a union, ``start`` is 0 and the padding spans the whole record.
    """

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """How to declare a struct/union so that C reproduces BTF's layout.

    ``items`` are member indexes and :class:`Pad` entries in declaration
    order.  ``align`` is the record's alignment as declared this way.
    ``exact`` is False only for BTF no C declaration can reproduce
    (overlapping or out-of-order struct members); the plan is then best effort.
    """

    packed: bool
    align: int
    items: tuple[int | Pad, ...]
    exact: bool = True


@dataclass(frozen=True, slots=True)
class CField:
    """One declaration as the layout algorithm sees it.

    ``size``/``align`` are those of the declared type in bytes; ``width`` is
    the bitfield width (None for an ordinary member); unnamed bitfields do not
    contribute to the record's alignment.  ``min_align`` is an ``aligned(N)``
    on the member: it raises an ordinary member's alignment, also in a packed record.
    """

    size: int
    align: int
    width: int | None = None
    named: bool = True
    min_align: int = 0


class RecordSim:
    """The SysV (clang/gcc, x86-64 and BPF) record layout, one field at a time.

    All positions are in bits.
    """

    def __init__(self, is_union: bool, packed: bool) -> None:
        self.is_union = is_union
        self.packed = packed
        self.data_bits = 0  # always a multiple of 8
        self.unfilled = 0  # bits of the last byte not used by the last bitfield
        self.align = 1

    def _align_of(self, f: CField) -> int:
        """The alignment of ordinary member ``f`` in this record."""
        return max(1 if self.packed else f.align, f.min_align)

    @property
    def next_bit(self) -> int:
        """Where the next bitfield could start."""
        return self.data_bits - self.unfilled

    def place(self, f: CField) -> int:
        """The bit offset ``f`` would get if added now."""
        if self.is_union:
            return 0
        if f.width is None:
            return natural_offset(self.data_bits, 8 * self._align_of(f))
        start = self.next_bit
        if f.width == 0:
            return natural_offset(start, 8 * f.align)
        if self.packed:
            return start
        unit = 8 * f.align
        if start % unit + f.width > 8 * f.size:
            return natural_offset(start, unit)
        return start

    def add(self, f: CField) -> int:
        """Lay out ``f``; returns its bit offset."""
        off = self.place(f)
        end = off + (8 * f.size if f.width is None else f.width)
        data = natural_offset(end, 8)
        if self.is_union:
            self.data_bits = max(self.data_bits, data)
        else:
            self.data_bits = data
            self.unfilled = data - end
        if f.width is None:
            self.align = max(self.align, self._align_of(f))
        elif f.named and not (self.packed and f.width):
            self.align = max(self.align, f.align)
        return off

    def size(self) -> int:
        """sizeof() of the record laid out so far."""
        return natural_offset(self.data_bits // 8, self.align)


def pad_pieces(start: int, end: int) -> list[tuple[int, int]]:
    """Split struct padding ``[start, end)`` into ``(unit_bits, width)`` unnamed
    bitfields (``long: 64``, ``int: 24`` ...) that C places back to back.

    Each piece stays inside one naturally aligned storage unit of its type, so
    neither packed nor unpacked layout moves it; unnamed bitfields leave the
    record's alignment alone.
    """
    pieces = []
    cur = start
    while cur < end:
        width = min(end - cur, PAD_UNIT_BITS - cur % PAD_UNIT_BITS)
        unit = next(u for u in (8, 16, 32, 64) if cur % u + width <= u)
        pieces.append((unit, width))
        cur += width
    return pieces


_PLANS: WeakKeyDictionary[Btf, dict[int, RecordPlan]] = WeakKeyDictionary()
_ALIGNS: WeakKeyDictionary[Btf, dict[int, int]] = WeakKeyDictionary()


def plan_record(btf: Btf, t: Composite) -> RecordPlan:
    """The declaration plan for struct/union ``t`` (cached per ``btf``)."""
    plans = _PLANS.setdefault(btf, {})
    plan = plans.get(t.id)
    if plan is None:
        plan = _plan(btf, t)
        plans[t.id] = plan
    return plan


def _plan(btf: Btf, t: Composite) -> RecordPlan:
    fields = [_member_field(btf, t, m) for m in t.members]
    attempt = _attempt(btf, t, fields, packed=False)
    if attempt is not None:
        return attempt
    attempt = _attempt(btf, t, fields, packed=True)
    if attempt is not None:
        return attempt
    return _best_effort(t, fields)


def _member_field(btf: Btf, t: Composite, m: Member) -> tuple[CField, int]:
    bf = btf.member_bitfield(t, m)
    size, align = _size_align(btf, m.type_id)
    return CField(size, align, bf.size or None), bf.bit_offset


def _attempt(btf: Btf, t: Composite, fields: list[tuple[CField, int]],
             packed: bool) -> RecordPlan | None:
    is_union = t.kind == Kind.UNION
    sim = RecordSim(is_union, packed)
    items: list[int | Pad] = []
    for i, (f, target) in enumerate(fields):
        pos = sim.place(f)
        if pos < target and not is_union:
            _pad(sim, items, sim.next_bit, target)
            pos = sim.place(f)
        if pos != target:
            return None
        sim.add(f)
        items.append(i)
    if sim.size() < t.size:
        if is_union:
            sim.add(CField(t.size, 1))
            items.append(Pad(0, 8 * t.size))
        else:
            _pad(sim, items, sim.next_bit, 8 * t.size)
    if sim.size() != t.size:
        return None
    return RecordPlan(packed, sim.align, tuple(items))


def _pad(sim: RecordSim, items: list[int | Pad], start: int, end: int) -> None:
    # The same as adding each of pad_pieces(start, end) to ``sim`` (back to back,
    # no effect on alignment), in O(1): a size that lies may ask for 2^32 bytes.
    assert not sim.is_union and start == sim.next_bit <= end
    sim.data_bits = natural_offset(end, 8)
    sim.unfilled = sim.data_bits - end
    items.append(Pad(start, end))


def _best_effort(t: Composite, fields: list[tuple[CField, int]]) -> RecordPlan:
    """Packed, padding forward where possible; overlaps are left as they fall."""
    sim = RecordSim(t.kind == Kind.UNION, packed=True)
    items: list[int | Pad] = []
    for i, (f, target) in enumerate(fields):
        if not sim.is_union and sim.next_bit < target:
            _pad(sim, items, sim.next_bit, target)
        sim.add(f)
        items.append(i)
    return RecordPlan(True, 1, tuple(items), exact=False)


def _size_align(btf: Btf, type_id: int) -> tuple[int, int]:
    try:
        return btf.size_of(type_id), type_align(btf, type_id)
    except BtfError:
        return 0, 1  # incomplete (e.g. a FWD by value): nothing C could do better


def is_packed(btf: Btf, t: Composite) -> bool:
    """Whether ``t`` must be declared ``__attribute__((packed))`` for BTF's
    offsets and size to hold."""
    return plan_record(btf, t).packed


def type_align(btf: Btf, type_id: int) -> int:
    """Alignment of a type as re-declared from BTF: natural for scalars,
    pointers and arrays, the plan's alignment for structs and unions (1 when
    packed)."""
    aligns = _ALIGNS.setdefault(btf, {})
    cached = aligns.get(type_id)
    if cached is not None and cached > 0:
        return cached
    t = btf.skip_modifiers(type_id)
    k = t.kind
    if k in (Kind.STRUCT, Kind.UNION):
        assert isinstance(t, (Struct, Union))
        if aligns.get(t.id) == -1:
            raise BtfError(f"type id {t.id} contains itself")
        aligns[t.id] = -1
        try:
            align = plan_record(btf, t).align
        finally:
            del aligns[t.id]
    elif k == Kind.ARRAY:
        align = type_align(btf, t.type_id)  # type: ignore[union-attr]
    elif k == Kind.PTR:
        align = 8
    elif k in (Kind.INT, Kind.FLOAT, Kind.ENUM, Kind.ENUM64):
        size: int = t.size  # type: ignore[union-attr]
        align = size if size in (1, 2, 4, 8, 16) else min(8, size) or 1
    else:
        raise BtfError(f"type id {type_id} ({k.name}) has no alignment")
    aligns[type_id] = align
    return align


def struct_gaps(btf: Btf, t: Composite) -> list[Gap]:
    """Padding a C compiler would not insert by itself, in whole bytes.

    Used to emit explicit ``char __pad[N]`` members (e.g. for cffi, which has
    no unnamed bitfields of our kind) so that the layout matches BTF, e.g. for
    ``aligned(N)`` members or over-aligned records.  A gap that starts inside
    a byte partly used by a bitfield starts at the next byte, which is where a
    ``char`` array would go.  Bit-granular gaps between bitfields cannot be
    expressed in bytes and are omitted.
    """
    gaps = []
    for item in plan_record(btf, t).items:
        if isinstance(item, Pad):
            start = natural_offset(item.start, 8) // 8
            end = item.end // 8
            if end > start:
                gaps.append(Gap(start, end - start))
    return gaps
