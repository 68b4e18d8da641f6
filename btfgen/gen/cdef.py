"""The cffi ``cdef`` of a generated module, and its check against BTF.

Every emitted struct/union/enum is declared under its ``TYPES`` spelling (a
name that two types share, legal in BTF, has bpftool's ``___2``, ``___3`` ...
suffix after its first use; anonymous ones are ``__btfgen_<Class>``), members
spelled with fixed-width types.  A struct is first written with cffi's natural
layout plus explicit padding where BTF's offsets differ (``aligned(N)``
members, tail padding); if cffi's layout then disagrees with BTF it is
rewritten ``packed`` with every hole explicit (cffi cannot place bitfields in
packed structs, so those become opaque bytes).
Every ``ffi.sizeof``/``ffi.offsetof`` and bitfield position is checked at
generation time; a remaining difference raises :class:`GenerateError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cffi
import cffi.model

from btfgen.btf_layout import struct_gaps, type_align
from btfgen.btf_model import (
    Array,
    Btf,
    BtfType,
    Enum,
    Enum64,
    Float,
    Int,
    Member,
    Ptr,
    Struct,
    Union,
)
from btfgen.errors import show
from btfgen.gen.model import EnumClass, GenerateError, RecordClass, TypeClass, TypeRefs
from btfgen.gen.naming import c_identifier
from btfgen.runtime.cffi_sizes import apply_sizes

#: Type names cffi knows by itself; a typedef must not redefine them.
CFFI_NAMES = frozenset(cffi.model.PrimitiveType.ALL_PRIMITIVE_TYPES) | {"FILE"}

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while _Bool _Complex _Imaginary bool""".split())


#: cdef member names of a record and its inlined anonymous members, by index path.
MemberNames = dict[tuple[int, ...], str]


@dataclass
class CdefChunk:
    """One ``ffi.cdef(text, packed=...)`` call."""

    text: str
    packed: bool


def _cname(name: str) -> bool:
    return (c_identifier(name) and name not in C_KEYWORDS
            and not name.startswith(("_btfgen", "__btfgen")))


class CdefBuilder:
    """Builds and checks the cdef for the classes of a :class:`TypeRefs`."""

    def __init__(self, refs: TypeRefs) -> None:
        self.refs = refs
        self.btf: Btf = refs.btf
        self.tags: dict[int, str] = {}
        self.enum_ok: set[int] = set()
        #: Enum tag -> the integer type giving it BTF's size, where cffi's own differs.
        self.enum_bases: dict[str, str] = {}
        #: Tags of 0-byte structs/unions (cffi would make them 1 byte).
        self.empty: list[str] = []
        self._text: dict[int, tuple[str, bool]] = {}
        #: Counter naming padding members, unique within one struct.
        self._pad = 0
        #: One FFI holding the enums and every record accepted so far, so checking a
        #: record parses only its own text (None: rebuild from ``_accepted``).
        self._shared: cffi.FFI | None = None
        self._accepted: list[tuple[str, bool]] = []

    # -- spelling -----------------------------------------------------------

    def _tag(self, c: TypeClass) -> str:
        """The cdef tag of ``c``: its ``TYPES`` spelling (unique per kind, as cffi
        keeps them) if that is a C identifier, else ``__btfgen_<Class>``."""
        t = self.btf.type(c.type_id)
        kw = "union" if isinstance(t, Union) else "enum" if isinstance(c, EnumClass) else "struct"
        spelled = self.refs.tag_spellings.get(c.type_id, "")
        name = spelled[len(kw) + 1:] if spelled.startswith(f"{kw} ") else ""
        if not _cname(name):
            name = f"__btfgen_{c.name}"
        return f"{kw} {name}"

    def _int(self, size: int, signed: bool) -> str:
        return f"{'' if signed else 'u'}int{size * 8}_t"

    def decl(self, type_id: int, declarator: str) -> str:
        """``type declarator`` for a member of ``type_id``."""
        t = self.btf.skip_modifiers(type_id)
        if isinstance(t, Int):
            if t.is_bool and t.size == 1:
                return f"_Bool {declarator}"
            if t.size == 1 and t.name == "char":
                return f"char {declarator}"
            if t.size in (1, 2, 4, 8):
                return f"{self._int(t.size, t.signed)} {declarator}"
            return f"uint8_t {declarator}[{t.size}]"
        if isinstance(t, Ptr):
            return f"uint64_t {declarator}"
        if isinstance(t, Float):
            if t.size in (4, 8):
                return f"{'float' if t.size == 4 else 'double'} {declarator}"
            return f"uint8_t {declarator}[{t.size}]"
        if isinstance(t, (Enum, Enum64)):
            if t.id in self.enum_ok and t.size == 4:
                return f"{self.tags[t.id]} {declarator}"
            if t.size in (1, 2, 4, 8):
                return f"{self._int(t.size, t.signed)} {declarator}"
            return f"uint8_t {declarator}[{t.size}]"
        if isinstance(t, (Struct, Union)):
            if t.size == 0:  # cffi cannot declare an empty struct
                return f"uint8_t {declarator}[0]"
            return f"{self.tags[t.id]} {declarator}"
        if isinstance(t, Array):
            return self.decl(t.type_id, f"{declarator}[{t.nelems}]")
        raise GenerateError(f"type id {t.id} ({t.kind.name}) cannot be a member")

    def _bit_type(self, type_id: int) -> str:
        t = self.btf.skip_modifiers(type_id)
        if isinstance(t, Int) and t.is_bool:
            return "_Bool"
        if isinstance(t, (Int, Enum, Enum64)) and t.size in (1, 2, 4, 8):
            return self._int(t.size, t.signed)
        raise GenerateError(f"bitfield of type id {type_id} cannot be declared")

    # -- bodies -------------------------------------------------------------

    def _inlined(self, m: Member) -> Struct | Union | None:
        """The anonymous struct/union member ``m`` declares inline, if it does."""
        mt = self.btf.skip_modifiers(m.type_id)
        if not m.name and isinstance(mt, (Struct, Union)) and mt.size:
            return mt
        return None

    def member_names(self, t: Struct | Union) -> MemberNames:
        """cdef names of ``t``'s members and of the members of the anonymous
        structs/unions inlined into it, keyed by index path (``(i,)``, ``(i, j)``
        ...): the C name, or ``_btfgen_m<path>`` when that is not a usable C
        identifier or repeats an earlier one anywhere in the inlined scope (cffi
        sees one field namespace)."""
        used: set[str] = set()

        def collect(s: Struct | Union) -> None:
            for m in s.members:
                used.add(m.name)
                sub = self._inlined(m)
                if sub is not None:
                    collect(sub)

        collect(t)
        names: MemberNames = {}
        seen: set[str] = set()

        def assign(s: Struct | Union, path: tuple[int, ...]) -> None:
            for i, m in enumerate(s.members):
                here = (*path, i)
                if not m.name or (_cname(m.name) and m.name not in seen):
                    names[here] = m.name
                    seen.add(m.name)
                else:
                    alt = "_btfgen_m" + "_".join(map(str, here))
                    while alt in used:
                        alt += "_"
                    names[here] = alt
                sub = self._inlined(m)
                if sub is not None:
                    assign(sub, here)

        assign(t, ())
        return names

    def body(self, t: Struct | Union, packed: bool, indent: str,
             scope: MemberNames | None = None, path: tuple[int, ...] = ()) -> list[str]:
        """Member lines of ``t`` (anonymous members inline); ``scope``/``path``:
        the names of the outermost record and where ``t`` sits in it."""
        btf = self.btf
        if scope is None:
            scope = self.member_names(t)
        names = [scope[(*path, i)] for i in range(len(t.members))]
        inner = [(*path, i) for i in range(len(t.members))]
        lines: list[str] = []

        def padding(offset: int, size: int) -> None:
            lines.append(f"{indent}uint8_t _btfgen_pad{self._pad}[{size}]; /* offset {offset} */")
            self._pad += 1

        if isinstance(t, Union):
            biggest = 0
            for m, name, here in zip(t.members, names, inner, strict=True):
                bf = btf.member_bitfield(t, m)
                if bf.size:
                    if packed:
                        size = (bf.bit_offset + bf.size + 7) // 8
                        lines.append(f"{indent}uint8_t _btfgen_bits{self._pad}[{size}];")
                        self._pad += 1
                    else:
                        lines.append(f"{indent}{self._bit_type(m.type_id)} {name} : {bf.size};")
                    biggest = max(biggest, (bf.bit_offset + bf.size + 7) // 8)
                    continue
                lines += self._member(m, name, packed, indent, scope, here)
                biggest = max(biggest, btf.size_of(m.type_id))
            natural = _round_up(biggest, 1 if packed else _align(btf, t))
            if natural != t.size:
                lines.append(f"{indent}uint8_t _btfgen_size{self._pad}[{t.size}];")
                self._pad += 1
            return lines

        if packed:
            pos = 0
            order = sorted(zip(t.members, names, inner, strict=True),
                           key=lambda mn: mn[0].bit_offset)
            i = 0
            while i < len(order):
                m, name, here = order[i]
                bf = btf.member_bitfield(t, m)
                if bf.size:
                    start = bf.bit_offset // 8
                    end = (bf.bit_offset + bf.size + 7) // 8
                    i += 1
                    while i < len(order):
                        bf2 = btf.member_bitfield(t, order[i][0])
                        if not bf2.size or bf2.bit_offset // 8 >= end:
                            break
                        end = max(end, (bf2.bit_offset + bf2.size + 7) // 8)
                        i += 1
                    start = max(start, pos)
                    if start > pos:
                        padding(pos, start - pos)
                    lines.append(f"{indent}uint8_t _btfgen_bits{self._pad}[{end - start}];")
                    self._pad += 1
                    pos = end
                    continue
                start = m.bit_offset // 8
                if start > pos:
                    padding(pos, start - pos)
                lines += self._member(m, name, packed, indent, scope, here)
                pos = max(pos, start + btf.size_of(m.type_id))
                i += 1
            if t.size > pos:
                padding(pos, t.size - pos)
            return lines

        gaps = sorted(struct_gaps(btf, t), key=lambda g: g.byte_offset)
        gi = 0
        for m, name, here in zip(t.members, names, inner, strict=True):
            bf = btf.member_bitfield(t, m)
            start = bf.bit_offset // 8
            while gi < len(gaps) and gaps[gi].byte_offset <= start and not bf.size:
                padding(gaps[gi].byte_offset, gaps[gi].size)
                gi += 1
            if bf.size:
                label = name if name else ""
                lines.append(f"{indent}{self._bit_type(m.type_id)} {label} : {bf.size};")
                continue
            lines += self._member(m, name, packed, indent, scope, here)
        for g in gaps[gi:]:
            padding(g.byte_offset, g.size)
        return lines

    def _member(self, m: Member, name: str, packed: bool, indent: str, scope: MemberNames,
                here: tuple[int, ...]) -> list[str]:
        mt = self.btf.skip_modifiers(m.type_id)
        if not name:
            if isinstance(mt, (Struct, Union)) and mt.size == 0:
                return []  # cffi cannot declare empty structs; nothing to reach here
            if isinstance(mt, (Struct, Union)):
                kw = "union" if isinstance(mt, Union) else "struct"
                return [f"{indent}{kw} {{", *self.body(mt, packed, indent + "    ", scope, here),
                        f"{indent}}};"]
            name = f"_btfgen_anon{self._pad}"
            self._pad += 1
        return [f"{indent}{self.decl(m.type_id, name)};"]

    # -- assembling and checking --------------------------------------------

    def build(self, classes: list[TypeClass]) -> list[CdefChunk]:
        """The cdef chunks for ``classes`` (checked against BTF)."""
        for c in classes:
            self.tags[c.type_id] = self._tag(c)
        chunks: list[CdefChunk] = []
        enum_lines = self._enums([c for c in classes if isinstance(c, EnumClass)])
        if enum_lines:
            chunks.append(CdefChunk("\n".join(enum_lines) + "\n", False))
        by_name = {c.name: c for c in classes}
        for c in classes:
            if not isinstance(c, RecordClass):
                continue
            t = self.btf.type(c.type_id)
            assert isinstance(t, (Struct, Union))
            if t.size == 0:  # declared empty; SizedFFI makes it 0 bytes
                text = f"{self.tags[c.type_id]} {{\n}};\n"
                self._text[c.type_id] = (text, False)
                self.empty.append(self.tags[c.type_id])
                chunks.append(CdefChunk(text, False))
                continue
            deps = self._dep_texts(c, by_name)
            text, packed = self._record(c, t, enum_lines, deps)
            self._text[c.type_id] = (text, packed)
            chunks.append(CdefChunk(text, packed))
        typedefs = self._typedefs(classes, chunks)
        if typedefs:
            chunks.append(CdefChunk("\n".join(typedefs) + "\n", False))
        merged: list[CdefChunk] = []
        for ch in chunks:
            if merged and merged[-1].packed == ch.packed:
                merged[-1] = CdefChunk(merged[-1].text + ch.text, ch.packed)
            else:
                merged.append(ch)
        return merged

    def _typedefs(self, classes: list[TypeClass], chunks: list[CdefChunk]) -> list[str]:
        """``typedef <tag> name;`` for the typedef names in TYPES that cffi can take."""
        by_name = {c.name: c for c in classes}
        lines = []
        for spelling, cls in sorted(self.refs.c_names.items()):
            c = by_name.get(cls)
            if c is None or " " in spelling or not _cname(spelling) or spelling in CFFI_NAMES:
                continue
            if isinstance(c, RecordClass):
                target = self.tags[c.type_id]
            elif c.type_id in self.enum_ok:
                target = self.tags[c.type_id]
            elif c.size in (1, 2, 4, 8):
                target = self._int(c.size, c.signed)
            else:
                continue
            lines.append(f"typedef {target} {spelling};")
        if not lines:
            return lines
        ffi = cffi.FFI()
        for ch in chunks:
            ffi.cdef(ch.text, packed=ch.packed)
        apply_sizes(ffi, self.enum_bases, self.empty)
        ok = []
        for line in lines:
            try:
                ffi.cdef(line)
            except (cffi.CDefError, cffi.FFIError):
                continue
            ok.append(line)
        return ok

    def _enums(self, enums: list[EnumClass]) -> list[str]:
        lines: list[str] = []
        used: set[str] = set()
        for c in enums:
            names = [n for n, _ in c.values]
            if not all(_cname(n) for n in names) or used & set(names) or len(set(names)) != \
                    len(names) or not names:
                continue
            tag = self.tags[c.type_id]
            values = _c_enum_values(c)
            text = f"{tag} {{ " + ", ".join(f"{n} = {v}" for n, v in values) + " };"
            base = None
            for attempt in range(2):
                ffi = cffi.FFI()
                try:
                    ffi.cdef(text)
                    if base is not None:
                        apply_sizes(ffi, {tag: base}, ())
                    size = ffi.sizeof(tag)
                    ffi.cast(tag, values[0][1])
                except (cffi.CDefError, cffi.FFIError, OverflowError, ValueError, TypeError):
                    size = -1
                if size == c.size or attempt or c.size not in (1, 2, 4, 8):
                    break
                # cffi makes enums int or long: give it BTF's size
                base = self._int(c.size, c.signed or any(v < 0 for _, v in values))
            if size != c.size:
                continue
            if base is not None:
                self.enum_bases[tag] = base
            used.update(names)
            self.enum_ok.add(c.type_id)
            lines.append(f"{tag} {{")
            lines += [f"    {n} = {v}," for n, v in values]
            lines.append("};")
        return lines

    def _dep_texts(self, c: RecordClass, by_name: dict[str, TypeClass]) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            d = by_name.get(name)
            if isinstance(d, RecordClass):
                for sub in sorted(d.deps):
                    visit(sub)
                out.append(self._text[d.type_id])

        for dep in sorted(c.deps):
            visit(dep)
        return out

    def _record(self, c: RecordClass, t: Struct | Union, enum_lines: list[str],
                deps: list[tuple[str, bool]]) -> tuple[str, bool]:
        done = self._record_fast(c, t, enum_lines)
        if done is None:
            done = self._record_alone(c, t, enum_lines, deps)
            self._shared = None  # the shared FFI may hold a failed attempt: rebuild it
        self._accepted.append(done)
        return done

    def _record_fast(self, c: RecordClass, t: Struct | Union,
                     enum_lines: list[str]) -> tuple[str, bool] | None:
        """The unpacked declaration checked in the shared FFI, or None if it fails
        (the caller then tries again on its own, packed too)."""
        tag = self.tags[c.type_id]
        self._pad = 0
        try:
            text = "\n".join([f"{tag} {{", *self.body(t, False, "    "), "};"]) + "\n"
        except GenerateError:
            return None
        try:
            if self._shared is None:
                ffi = cffi.FFI()
                if enum_lines:
                    ffi.cdef("\n".join(enum_lines))
                for dtext, dpacked in self._accepted:
                    ffi.cdef(dtext, packed=dpacked)
                self._shared = ffi
            self._shared.cdef(text)
            problem = self.check(self._shared, t, tag, False)
        except (cffi.CDefError, cffi.FFIError, NotImplementedError, TypeError,
                ValueError, OverflowError, KeyError):
            problem = "cffi"
        if problem is None:
            return text, False
        self._shared = None
        return None

    def _record_alone(self, c: RecordClass, t: Struct | Union, enum_lines: list[str],
                      deps: list[tuple[str, bool]]) -> tuple[str, bool]:
        tag = self.tags[c.type_id]
        errors: list[str] = []
        for packed in (False, True):
            self._pad = 0
            try:
                lines = [f"{tag} {{", *self.body(t, packed, "    "), "};"]
            except GenerateError as e:
                errors.append(str(e))
                continue
            text = "\n".join(lines) + "\n"
            ffi = cffi.FFI()
            try:
                if enum_lines:
                    ffi.cdef("\n".join(enum_lines))
                for dtext, dpacked in deps:
                    ffi.cdef(dtext, packed=dpacked)
                ffi.cdef(text, packed=packed)
                problem = self.check(ffi, t, tag, packed)
            except (cffi.CDefError, cffi.FFIError, NotImplementedError, TypeError,
                    ValueError, OverflowError, KeyError) as e:
                problem = f"cffi: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            if problem is None:
                return text, packed
            errors.append(problem)
        raise GenerateError(f"cannot declare {show(c.c_spelling)} (class {c.name})"
                            " for cffi:"
                            f" {errors[-1]}")

    def check(self, ffi: cffi.FFI, t: Struct | Union, tag: str, packed: bool) -> str | None:
        """None if ``ffi``'s layout of ``tag`` equals BTF's, else what differs."""
        size = ffi.sizeof(tag)
        if size != t.size:
            return f"sizeof {size} != BTF {t.size}"
        fields = dict(ffi.typeof(tag).fields or ())  # anonymous members' fields flattened
        return self._check_members(ffi, t, tag, fields, 0, packed)

    def _check_members(self, ffi: cffi.FFI, t: Struct | Union, tag: str,
                       fields: dict[str, Any], base: int, packed: bool,
                       scope: MemberNames | None = None,
                       path: tuple[int, ...] = ()) -> str | None:
        btf = self.btf
        if scope is None:
            scope = self.member_names(t)
        for i, m in enumerate(t.members):
            name = scope[(*path, i)]
            bf = btf.member_bitfield(t, m)
            mt = btf.skip_modifiers(m.type_id)
            if not name:
                if isinstance(mt, (Struct, Union)) and not bf.size and mt.size:
                    err = self._check_members(ffi, mt, tag, fields, base + m.bit_offset // 8,
                                              packed, scope, (*path, i))
                    if err:
                        return err
                continue
            if bf.size:
                if packed or self.refs.byteorder != "little":
                    continue
                err = _check_bitfield(fields.get(name), name, base * 8 + bf.bit_offset, bf.size)
                if err:
                    return err
                continue
            if btf.size_of(m.type_id) == 0:
                continue  # cffi keeps no field for a zero-length array
            field = fields.get(name)  # ffi.offsetof searches the fields: slow on 32k
            off = field.offset if field is not None else ffi.offsetof(tag, name)
            if off != base + m.bit_offset // 8:
                return f"offsetof {name} {off} != BTF {base + m.bit_offset // 8}"
        return None


def _c_enum_values(c: EnumClass) -> list[tuple[str, int]]:
    """The enumerators as C declares them.  BTF before ENUM's signedness flag
    (clang 14) stores a packed enum's -1 as the 32-bit 0xffffffff: values too
    big for a narrower enum are 32-bit two's complement."""
    if c.size < 4 and not c.signed and any(v >= 1 << (8 * c.size) for _, v in c.values):
        return [(n, v - (1 << 32) if v >= 1 << 31 else v) for n, v in c.values]
    return list(c.values)


def _check_bitfield(field: Any, name: str, bit: int, width: int) -> str | None:
    """None if cffi puts bitfield ``name`` (its ``CField``) at struct bit ``bit``
    with ``width`` bits, as BTF does (little-endian: the unit's byte offset
    plus the shift within it).  Read from cffi's layout, not by writing an
    instance: the struct's size comes from BTF and may be huge."""
    if field is None:
        return f"bitfield {name} missing"
    at = field.offset * 8 + field.bitshift
    if at != bit or field.bitsize != width:
        return f"bitfield {name} at bit {at} width {field.bitsize}, BTF: bit {bit} width {width}"
    return None


def _round_up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def _align(btf: Btf, t: BtfType) -> int:
    try:
        return type_align(btf, t.id)
    except Exception:  # noqa: BLE001 -- any BTF oddity: assume byte alignment
        return 1


@dataclass
class Cdef:
    """What a module declares in its ``ffi``: the cdef chunks, and the sizes that
    :class:`btfgen.runtime.sized_ffi.SizedFFI` must set (empty: a plain FFI)."""

    chunks: list[CdefChunk]
    enum_bases: dict[str, str]
    empty: list[str]


def build_cdef(refs: TypeRefs, classes: list[TypeClass]) -> Cdef:
    """The checked cdef of ``classes`` (see the module docstring)."""
    builder = CdefBuilder(refs)
    chunks = builder.build(classes)
    return Cdef(chunks, builder.enum_bases, builder.empty)
