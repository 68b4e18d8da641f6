"""Typed model of BTF: one class per kind, and the :class:`Btf` container.

The classes mirror the kernel's ``include/uapi/linux/btf.h``.  Type ids refer to
entries of the same :class:`Btf` (or of its base, for split BTF); id 0 is
``void``.  Names are ``str``; bytes that are not UTF-8 are kept with
``surrogateescape`` so the original bytes can always be recovered with
:func:`name_bytes`.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field

from btfgen.errors import BtfError


class Kind(enum.IntEnum):
    """BTF_KIND_* values."""

    VOID = 0
    INT = 1
    PTR = 2
    ARRAY = 3
    STRUCT = 4
    UNION = 5
    ENUM = 6
    FWD = 7
    TYPEDEF = 8
    VOLATILE = 9
    CONST = 10
    RESTRICT = 11
    FUNC = 12
    FUNC_PROTO = 13
    VAR = 14
    DATASEC = 15
    FLOAT = 16
    DECL_TAG = 17
    TYPE_TAG = 18
    ENUM64 = 19


class IntEncoding(enum.IntFlag):
    """BTF_INT_* encoding bits."""

    NONE = 0
    SIGNED = 1
    CHAR = 2
    BOOL = 4


class Linkage(enum.IntEnum):
    """Linkage of FUNC (static/global/extern) and VAR (static/global/extern)."""

    STATIC = 0
    GLOBAL = 1
    EXTERN = 2


def name_bytes(name: str) -> bytes:
    """The original bytes of a BTF name (inverse of the parser's decoding)."""
    return name.encode("utf-8", "surrogateescape")


@dataclass(slots=True)
class Void:
    """Type id 0: ``void``."""

    id: int = 0
    name: str = ""
    name_off: int = 0
    kind_flag: bool = False
    kind = Kind.VOID


@dataclass(slots=True)
class Int:
    """BTF_KIND_INT: an integer, char or _Bool of ``size`` bytes."""

    id: int
    name: str
    name_off: int
    size: int
    encoding: IntEncoding
    bits_offset: int
    nr_bits: int
    kind_flag: bool = False
    kind = Kind.INT

    @property
    def signed(self) -> bool:
        return bool(self.encoding & IntEncoding.SIGNED)

    @property
    def is_bool(self) -> bool:
        return bool(self.encoding & IntEncoding.BOOL)

    @property
    def is_char(self) -> bool:
        return bool(self.encoding & IntEncoding.CHAR)


@dataclass(slots=True)
class Ptr:
    """BTF_KIND_PTR: a pointer to ``type_id``."""

    id: int
    name: str
    name_off: int
    type_id: int
    kind_flag: bool = False
    kind = Kind.PTR


@dataclass(slots=True)
class Array:
    """BTF_KIND_ARRAY: ``nelems`` elements of ``type_id``."""

    id: int
    name: str
    name_off: int
    type_id: int
    index_type_id: int
    nelems: int
    kind_flag: bool = False
    kind = Kind.ARRAY


@dataclass(slots=True)
class Member:
    """A member of a struct or union.

    ``bit_offset``/``bitfield_size`` are the raw encoded values: with the
    parent's ``kind_flag`` the bitfield size is encoded here, without it a
    bitfield is described by the member's INT type (see
    :meth:`Btf.member_bitfield`).
    """

    name: str
    name_off: int
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass(slots=True)
class Struct:
    """BTF_KIND_STRUCT."""

    id: int
    name: str
    name_off: int
    size: int
    members: list[Member]
    kind_flag: bool = False
    kind = Kind.STRUCT


@dataclass(slots=True)
class Union:
    """BTF_KIND_UNION."""

    id: int
    name: str
    name_off: int
    size: int
    members: list[Member]
    kind_flag: bool = False
    kind = Kind.UNION


@dataclass(slots=True)
class EnumValue:
    """One enumerator: name and value (already sign-interpreted)."""

    name: str
    name_off: int
    value: int


@dataclass(slots=True)
class Enum:
    """BTF_KIND_ENUM: 32-bit (or smaller) enumerators; ``kind_flag`` = signed."""

    id: int
    name: str
    name_off: int
    size: int
    values: list[EnumValue]
    kind_flag: bool = False
    kind = Kind.ENUM

    @property
    def signed(self) -> bool:
        return self.kind_flag


@dataclass(slots=True)
class Enum64:
    """BTF_KIND_ENUM64: 64-bit enumerators; ``kind_flag`` = signed."""

    id: int
    name: str
    name_off: int
    size: int
    values: list[EnumValue]
    kind_flag: bool = False
    kind = Kind.ENUM64

    @property
    def signed(self) -> bool:
        return self.kind_flag


@dataclass(slots=True)
class Fwd:
    """BTF_KIND_FWD: a forward declaration; ``kind_flag`` means union."""

    id: int
    name: str
    name_off: int
    kind_flag: bool = False
    kind = Kind.FWD

    @property
    def is_union(self) -> bool:
        return self.kind_flag


@dataclass(slots=True)
class Typedef:
    """BTF_KIND_TYPEDEF."""

    id: int
    name: str
    name_off: int
    type_id: int
    kind_flag: bool = False
    kind = Kind.TYPEDEF


@dataclass(slots=True)
class Volatile:
    """BTF_KIND_VOLATILE."""

    id: int
    name: str
    name_off: int
    type_id: int
    kind_flag: bool = False
    kind = Kind.VOLATILE


@dataclass(slots=True)
class Const:
    """BTF_KIND_CONST."""

    id: int
    name: str
    name_off: int
    type_id: int
    kind_flag: bool = False
    kind = Kind.CONST


@dataclass(slots=True)
class Restrict:
    """BTF_KIND_RESTRICT."""

    id: int
    name: str
    name_off: int
    type_id: int
    kind_flag: bool = False
    kind = Kind.RESTRICT


@dataclass(slots=True)
class TypeTag:
    """BTF_KIND_TYPE_TAG: ``btf_type_tag("name")`` applied to ``type_id``."""

    id: int
    name: str
    name_off: int
    type_id: int
    kind_flag: bool = False
    kind = Kind.TYPE_TAG


@dataclass(slots=True)
class Func:
    """BTF_KIND_FUNC: a function; ``type_id`` is its FUNC_PROTO."""

    id: int
    name: str
    name_off: int
    type_id: int
    linkage: int
    kind_flag: bool = False
    kind = Kind.FUNC


@dataclass(slots=True)
class Param:
    """A FUNC_PROTO parameter (``type_id`` 0 with no name: varargs)."""

    name: str
    name_off: int
    type_id: int


@dataclass(slots=True)
class FuncProto:
    """BTF_KIND_FUNC_PROTO."""

    id: int
    name: str
    name_off: int
    return_type_id: int
    params: list[Param]
    kind_flag: bool = False
    kind = Kind.FUNC_PROTO


@dataclass(slots=True)
class Var:
    """BTF_KIND_VAR: a global variable."""

    id: int
    name: str
    name_off: int
    type_id: int
    linkage: int
    kind_flag: bool = False
    kind = Kind.VAR


@dataclass(slots=True)
class VarSecinfo:
    """A DATASEC entry: variable ``type_id`` at ``offset`` taking ``size`` bytes."""

    type_id: int
    offset: int
    size: int


@dataclass(slots=True)
class Datasec:
    """BTF_KIND_DATASEC: an ELF data section and the variables in it."""

    id: int
    name: str
    name_off: int
    size: int
    vars: list[VarSecinfo]
    kind_flag: bool = False
    kind = Kind.DATASEC


@dataclass(slots=True)
class Float:
    """BTF_KIND_FLOAT."""

    id: int
    name: str
    name_off: int
    size: int
    kind_flag: bool = False
    kind = Kind.FLOAT


@dataclass(slots=True)
class DeclTag:
    """BTF_KIND_DECL_TAG: ``btf_decl_tag("name")`` on ``type_id``.

    ``component_idx`` is -1 for the type itself, else a member/param index.
    """

    id: int
    name: str
    name_off: int
    type_id: int
    component_idx: int
    kind_flag: bool = False
    kind = Kind.DECL_TAG


BtfType = typing.Union[
    Void, Int, Ptr, Array, Struct, Union, Enum, Enum64, Fwd, Typedef, Volatile,
    Const, Restrict, TypeTag, Func, FuncProto, Var, Datasec, Float, DeclTag,
]
Composite = typing.Union[Struct, Union]

#: Kinds that are transparent for layout: they add no storage of their own.
MODIFIER_KINDS = frozenset(
    {Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG}
)
QUALIFIER_KINDS = frozenset({Kind.VOLATILE, Kind.CONST, Kind.RESTRICT, Kind.TYPE_TAG})
_SIZED_KINDS = frozenset(
    {Kind.INT, Kind.FLOAT, Kind.ENUM, Kind.ENUM64, Kind.STRUCT, Kind.UNION, Kind.DATASEC}
)


@dataclass(slots=True, frozen=True)
class Bitfield:
    """Where a member's bits are: absolute bit offset in the parent and width.

    ``size`` is 0 for a member that is not a bitfield.
    """

    bit_offset: int
    size: int


@dataclass(slots=True)
class BtfHeader:
    """The fields of ``struct btf_header``."""

    magic: int
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int
    #: The layout section (kernel 7.1+): 0/0 when the header is too short to have one.
    layout_off: int = 0
    layout_len: int = 0
    #: Its entries, one per kind id: ``(info_sz, elem_sz, flags)``.
    layout: tuple[tuple[int, int, int], ...] = ()


@dataclass(eq=False)
class Btf:
    """A parsed BTF blob: its types in id order, its strings and, for split
    BTF, the base it extends.

    ``types[i]`` has id ``start_id + i``; ids below ``start_id`` live in
    ``base``.
    """

    header: BtfHeader
    types: list[BtfType]
    strings: bytes
    byteorder: str = "little"
    base: Btf | None = None
    start_id: int = 1
    start_str_off: int = 0
    _by_name: dict[str, list[int]] | None = field(default=None, repr=False)

    # -- lookup -------------------------------------------------------------

    @property
    def type_count(self) -> int:
        """One past the largest valid type id (ids of base included)."""
        return self.start_id + len(self.types)

    def __len__(self) -> int:
        return len(self.types)

    def __iter__(self) -> Iterator[BtfType]:
        return iter(self.types)

    def type(self, type_id: int) -> BtfType:
        """The type with ``type_id`` (0 is void); looks into the base for split BTF."""
        if type_id >= self.start_id:
            idx = type_id - self.start_id
            if idx < len(self.types):
                return self.types[idx]
            raise BtfError(f"type id {type_id} out of range (max {self.type_count - 1})")
        if type_id == 0:
            return VOID
        if self.base is not None:
            return self.base.type(type_id)
        raise BtfError(f"type id {type_id} out of range")

    def all_types(self) -> Iterator[BtfType]:
        """Every type of the base (if any) and then this BTF's own, id order."""
        if self.base is not None:
            yield from self.base.all_types()
        yield from self.types

    def string(self, off: int) -> str:
        """The NUL-terminated string at ``off`` of the (possibly split) string table."""
        if off < self.start_str_off:
            assert self.base is not None
            return self.base.string(off)
        rel = off - self.start_str_off
        end = self.strings.index(b"\0", rel)
        return self.strings[rel:end].decode("utf-8", "surrogateescape")

    def find(self, name: str, kind: Kind | None = None) -> list[BtfType]:
        """All types named ``name`` (optionally of one kind), base included."""
        if self._by_name is None:
            index: dict[str, list[int]] = {}
            for t in self.all_types():
                if t.name:
                    index.setdefault(t.name, []).append(t.id)
            self._by_name = index
        found = [self.type(i) for i in self._by_name.get(name, ())]
        if kind is not None:
            found = [t for t in found if t.kind == kind]
        return found

    # -- resolving ----------------------------------------------------------

    def skip_modifiers(self, type_id: int, *, keep_typedefs: bool = False) -> BtfType:
        """Follow typedefs and qualifiers (const/volatile/restrict/type tags)."""
        kinds = QUALIFIER_KINDS if keep_typedefs else MODIFIER_KINDS
        seen = 0
        t = self.type(type_id)
        while t.kind in kinds:
            t = self.type(t.type_id)  # type: ignore[union-attr]
            seen += 1
            if seen > len(self.types) + 1:
                raise BtfError(f"reference loop through type id {type_id}")
        return t

    def skip_qualifiers(self, type_id: int) -> BtfType:
        """Follow qualifiers and type tags, keeping typedefs."""
        return self.skip_modifiers(type_id, keep_typedefs=True)

    def size_of(self, type_id: int) -> int:
        """sizeof() of the type in bytes, as the BPF target lays it out."""
        mult = 1
        for _ in range(self.type_count + 1):
            t = self.type(type_id)
            k = t.kind
            if k in MODIFIER_KINDS or k == Kind.VAR:
                type_id = t.type_id  # type: ignore[union-attr]
            elif k == Kind.ARRAY:
                mult *= t.nelems  # type: ignore[union-attr]
                type_id = t.type_id  # type: ignore[union-attr]
            elif k == Kind.PTR:
                return 8 * mult
            elif k in _SIZED_KINDS:
                return t.size * mult  # type: ignore[union-attr]
            else:
                raise BtfError(f"type id {type_id} ({k.name}) has no size")
        raise BtfError(f"reference loop through type id {type_id}")

    def align_of(self, type_id: int) -> int:
        """_Alignof() of the type (natural alignment; packing is not inferred here,
        see :func:`btfgen.btf_layout.type_align`)."""
        for _ in range(self.type_count + 1):
            t = self.type(type_id)
            k = t.kind
            if k in MODIFIER_KINDS or k == Kind.VAR or k == Kind.ARRAY:
                type_id = t.type_id  # type: ignore[union-attr]
            elif k == Kind.PTR:
                return 8
            elif k in (Kind.INT, Kind.FLOAT, Kind.ENUM, Kind.ENUM64):
                return min(t.size, 8) or 1  # type: ignore[union-attr]
            elif k == Kind.STRUCT or k == Kind.UNION:
                return max((self.align_of(m.type_id) for m in t.members),  # type: ignore[union-attr]
                           default=1)
            elif k == Kind.DATASEC:
                return 1
            else:
                raise BtfError(f"type id {type_id} ({k.name}) has no alignment")
        raise BtfError(f"reference loop through type id {type_id}")

    def member_bitfield(self, parent: Composite, member: Member) -> Bitfield:
        """Absolute bit offset and bitfield width of ``member`` in ``parent``.

        Handles both encodings: ``kind_flag`` set (width in the member offset)
        and the legacy one (width and extra offset in the member's INT type).
        """
        if parent.kind_flag:
            return Bitfield(member.bit_offset, member.bitfield_size)
        t = self.skip_modifiers(member.type_id)
        if isinstance(t, Int) and (t.bits_offset or t.nr_bits != t.size * 8):
            return Bitfield(member.bit_offset + t.bits_offset, t.nr_bits)
        return Bitfield(member.bit_offset, 0)

    def c_spelling(self, type_id: int) -> str:
        """How C refers to a named type: ``struct x``, ``union u``, ``enum e``, or the
        bare name for typedefs, ints and floats."""
        t = self.type(type_id)
        if t.kind == Kind.STRUCT:
            return f"struct {t.name}"
        if t.kind == Kind.UNION:
            return f"union {t.name}"
        if t.kind in (Kind.ENUM, Kind.ENUM64):
            return f"enum {t.name}"
        if t.kind == Kind.FWD:
            return f"{'union' if t.kind_flag else 'struct'} {t.name}"
        if t.kind == Kind.VOID:
            return "void"
        return t.name


VOID = Void()
