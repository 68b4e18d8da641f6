"""``btfgen dump --format c``: BTF as compilable C declarations (a ``vmlinux.h``).

Like ``bpftool btf dump file F format c``: every named struct, union, enum and
typedef, each declared before it is used by value, with forward declarations
where a pointer is enough; anonymous records and enums are written inline;
FUNC, VAR and DATASEC are not declarations of types and are left out.  The
layout reproduces BTF exactly: :mod:`btfgen.btf_layout` decides packing and
explicit padding (unnamed bitfields).  Names from BTF are not trusted: ones
that are not C identifiers (or are keywords) are rewritten, and clashing names
get a ``___N`` suffix as in bpftool.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from btfgen.btf_layout import Pad, natural_offset, pad_pieces, plan_record
from btfgen.btf_model import (
    Array,
    Btf,
    BtfType,
    Composite,
    Const,
    Enum,
    Enum64,
    Float,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Volatile,
)
from btfgen.errors import BtfError

HEADER = """\
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
#endif

"""

FOOTER = """\
#ifndef BPF_NO_PRESERVE_ACCESS_INDEX
#pragma clang attribute pop
#endif

#endif /* __VMLINUX_H__ */
"""

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_IDENT_CHAR = re.compile(r"[^A-Za-z0-9_]")

#: Words a BTF name must not become: C11/GNU keywords and compiler built-in types.
RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto
if inline int long register restrict return short signed sizeof static struct switch
typedef union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex
_Generic _Imaginary _Noreturn _Static_assert _Thread_local asm typeof __attribute__
__attribute __typeof__ __typeof __asm__ __asm __inline__ __inline __restrict__
__restrict __volatile__ __const__ __const __signed__ __signed __extension__ __int128
__label__ __real__ __imag__ __thread _Float16 __fp16 __bf16 __float128 __ibm128
__builtin_va_list __auto_type _BitInt _Decimal32 _Decimal64 _Decimal128
""".split())
# C23's new keywords (true, false, bool, alignas...) stay usable: vmlinux.h
# defines "enum { false = 0, true = 1 }" and BPF programs rely on it (gnu17).

#: Typedefs the compiler provides; written as their BTF definition instead.
TRANSPARENT_TYPEDEFS = frozenset({"__builtin_va_list"})

_MODE = {1: "QI", 2: "HI", 4: "SI", 8: "DI"}
_PAD_TYPES = {8: "char", 16: "short", 32: "int", 64: "long"}
#: Struct padding longer than this many `long: 64` lines is declared as a char array.
_MAX_PAD_BITFIELDS = 64
_UNSIGNED = {1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long"}
_FLOATS = {2: "_Float16", 4: "float", 8: "double", 16: "long double"}


def format_c(btf: Btf) -> str:
    """C declarations for every type of ``btf`` (a base's types included)."""
    try:
        return CWriter(btf).dump()
    except RecursionError:
        raise BtfError("types nested too deeply to declare in C") from None


def sanitize(name: str) -> str:
    """``name`` as a usable C identifier (invalid characters become ``_``)."""
    if _IDENT.match(name) and name not in RESERVED:
        return name
    name = _NOT_IDENT_CHAR.sub("_", name)
    if not name or name[0].isdigit():
        name = "_" + name
    if name in RESERVED:
        name += "_"
    return name


def _unique(base: str, used: set[str]) -> str:
    name = base
    n = 1
    while name in used:
        n += 1
        name = f"{base}___{n}"
    used.add(name)
    return name


def int_spelling(t: Int) -> str:
    """The C name of an INT: its BTF name if that is a C integer type of the
    right size, else a standard type of that size and signedness."""
    if _int_name_size(t.name) == t.size:
        return t.name
    if t.is_bool and t.size == 1:
        return "_Bool"
    base = {1: "char", 2: "short", 4: "int", 8: "long", 16: "__int128"}.get(t.size)
    if base is None:
        return "unsigned char" if t.size <= 1 else "long"
    return ("signed " if t.signed else "unsigned ") + base


def _int_name_size(name: str) -> int | None:
    """sizeof() the C integer type spelled ``name``, or None if it is not one."""
    words = name.split()
    signs = sum(w in ("signed", "unsigned") for w in words)
    rest = sorted(w for w in words if w not in ("signed", "unsigned"))
    if signs > 1:
        return None
    if rest in (["char"], ["__int128"]) or (rest == ["_Bool"] and not signs):
        return {"char": 1, "_Bool": 1, "__int128": 16}[rest[0]]
    rest = [w for w in rest if w != "int"] if words.count("int") == 1 else rest
    if rest == [] and (signs or words == ["int"]) or rest == ["int"]:
        return 4
    if rest == ["short"]:
        return 2
    if rest in (["long"], ["long", "long"]):
        return 8
    return None


def float_spelling(t: Float) -> str:
    """The C name of a FLOAT: its BTF name if standard, else by size."""
    if _FLOATS.get(t.size) == t.name or (t.size == 8 and t.name == "long double"):
        return t.name
    return _FLOATS.get(t.size, "double")


def enum_natural_size(values: Iterable[int]) -> int:
    """sizeof() a C compiler gives an enum with these values."""
    vals = list(values)
    lo, hi = min(vals, default=0), max(vals, default=0)
    if lo >= -(2**31) and (hi < 2**31 or (lo >= 0 and hi < 2**32)):
        return 4
    return 8


def _leading_qualifiers(inner: str) -> list[str]:
    words = []
    for w in inner.split():
        if w not in ("const", "volatile", "restrict"):
            break
        words.append(w)
    return words


def _enum_literal(v: int) -> str:
    if v >= 2**63:
        return f"{v}ULL"
    if v == -(2**63):
        return "(-9223372036854775807LL - 1)"
    return str(v)


class CWriter:
    """Writes the C declarations of one BTF; see :func:`format_c`.

    After :meth:`dump`, :meth:`spelling` tells how the output names a type
    (``struct foo___2``), which is what tests need to check the layout.
    """

    def __init__(self, btf: Btf) -> None:
        self.btf = btf
        self.out: list[str] = []
        self._tags: dict[int, str] = {}
        self._tags_used: set[str] = set()
        self._idents: dict[int, str] = {}
        self._idents_used: set[str] = set(RESERVED)
        self._declared_tags: set[str] = set()
        self._defined: set[int] = set()
        self._defining: set[int] = set()
        self._typedefs: set[int] = set()
        self._expanding: set[int] = set()
        self._requiring: set[int] = set()

    # -- names -------------------------------------------------------------

    def tag_name(self, type_id: int) -> str:
        """The tag of a struct/union/enum/fwd as written (without keyword)."""
        name = self._tags.get(type_id)
        if name is None:
            t = self.btf.type(type_id)
            if isinstance(t, Fwd):
                want = Kind.UNION if t.is_union else Kind.STRUCT
                full = self.btf.find(t.name, want)
                if full:
                    name = self.tag_name(full[0].id)
            if name is None:
                name = _unique(sanitize(t.name), self._tags_used)
            self._tags[type_id] = name
        return name

    def ident_name(self, type_id: int) -> str:
        """The name of a typedef as written."""
        name = self._idents.get(type_id)
        if name is None:
            name = _unique(sanitize(self.btf.type(type_id).name), self._idents_used)
            self._idents[type_id] = name
        return name

    def spelling(self, type_id: int) -> str:
        """How the output refers to a named type (``struct foo``, ``foo_t``)."""
        t = self.btf.type(type_id)
        if t.kind == Kind.TYPEDEF:
            return self.ident_name(type_id)
        return self._base(t, 0, None)

    # -- driving ------------------------------------------------------------

    def dump(self) -> str:
        """The whole header."""
        referenced = self._referenced()
        for t in self.btf.all_types():
            if isinstance(t, (Struct, Union)) and t.name:
                self._define(t.id)
            elif isinstance(t, (Enum, Enum64)):
                if t.name:
                    self._define_enum(t.id)
                elif t.id not in referenced and t.values:
                    self._emit(self._enum_text(t, 0) + ";")
            elif t.kind == Kind.TYPEDEF:
                self._require(t.id, strong=True, ctx=None)
            elif t.kind == Kind.FWD:
                self._forward(t.id)
        return HEADER + "".join(self.out) + FOOTER

    def _referenced(self) -> set[int]:
        """Types some emitted declaration refers to (anonymous enums that are
        not are written on their own, for their constants)."""
        refs: set[int] = set()
        for t in self.btf.all_types():
            if isinstance(t, (Struct, Union)):
                refs.update(m.type_id for m in t.members)
            elif isinstance(t, FuncProto):
                refs.add(t.return_type_id)
                refs.update(p.type_id for p in t.params)
            elif isinstance(t, (Array, Ptr, Typedef, Const, Volatile, Restrict, TypeTag)):
                refs.add(t.type_id)
        return refs

    def _emit(self, text: str) -> None:
        self.out.append(text + "\n\n")

    # -- dependency order ---------------------------------------------------

    def _require(self, type_id: int, strong: bool, ctx: int | None) -> None:
        """Make ``type_id`` usable in a declaration written next: defined if
        ``strong`` (used by value), else at least declared.  ``ctx`` is the
        named record whose body is being written (it needs no forward
        declaration of itself)."""
        t = self.btf.type(type_id)
        k = t.kind
        if k == Kind.PTR:
            self._require(t.type_id, False, ctx)  # type: ignore[union-attr]
        elif k == Kind.ARRAY:
            self._require(t.type_id, True, ctx)  # type: ignore[union-attr]
        elif k in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG):
            self._require(t.type_id, strong, ctx)  # type: ignore[union-attr]
        elif k == Kind.FUNC_PROTO:
            assert isinstance(t, FuncProto)
            self._require(t.return_type_id, False, ctx)
            for p in t.params:
                if p.type_id:
                    self._require(p.type_id, False, ctx)
        elif k == Kind.TYPEDEF:
            assert isinstance(t, Typedef)
            if t.name in TRANSPARENT_TYPEDEFS:
                self._require(t.type_id, strong, ctx)
                return
            if type_id not in self._typedefs:
                self._typedefs.add(type_id)
                target = self.btf.skip_qualifiers(t.type_id)
                if not (target.kind in (Kind.STRUCT, Kind.UNION, Kind.FWD) and target.name):
                    self._require(t.type_id, False, None)
                self._emit("typedef " + self._decl(t.type_id, self.ident_name(type_id), 0) + ";")
                if target.kind in (Kind.STRUCT, Kind.UNION, Kind.FWD) and target.name:
                    self._declared_tags.add(self._base(target, 0, None))
            if strong:
                self._require(t.type_id, True, ctx)
        elif k in (Kind.STRUCT, Kind.UNION):
            assert isinstance(t, (Struct, Union))
            if not t.name:
                if type_id in self._requiring:
                    return
                self._requiring.add(type_id)
                for m in t.members:
                    self._require(m.type_id, True, ctx)
                self._requiring.discard(type_id)
            elif strong:
                self._define(type_id)
            elif type_id != ctx:
                self._forward(type_id)
        elif k in (Kind.ENUM, Kind.ENUM64):
            if t.name:
                self._define_enum(type_id)
        elif k == Kind.FWD:
            self._forward(type_id)

    def _forward(self, type_id: int) -> None:
        t = self.btf.type(type_id)
        if isinstance(t, Fwd):
            full = self.btf.find(t.name, Kind.UNION if t.is_union else Kind.STRUCT)
            if full and full[0].id in self._defined:
                return
        spelled = self._base(t, 0, None)
        if spelled not in self._declared_tags:
            self._declared_tags.add(spelled)
            self._emit(spelled + ";")

    def _define(self, type_id: int) -> None:
        if type_id in self._defined or type_id in self._defining:
            return
        t = self.btf.type(type_id)
        assert isinstance(t, (Struct, Union))
        self._defining.add(type_id)
        for m in t.members:
            self._require(m.type_id, True, type_id)
        self._emit(self._record_text(t, 0, None) + ";")
        self._defining.discard(type_id)
        self._defined.add(type_id)
        self._declared_tags.add(self._base(t, 0, None))

    def _define_enum(self, type_id: int) -> None:
        if type_id in self._defined:
            return
        self._defined.add(type_id)
        t = self.btf.type(type_id)
        assert isinstance(t, (Enum, Enum64))
        if not t.values:
            self._emit(f"enum {self.tag_name(type_id)};")
        else:
            self._emit(self._enum_text(t, 0) + ";")

    # -- text ---------------------------------------------------------------

    def _base(self, t: BtfType, lvl: int, scope: set[str] | None) -> str:
        """The type-specifier part for a type that is not a declarator kind."""
        k = t.kind
        if k == Kind.STRUCT or k == Kind.UNION:
            assert isinstance(t, (Struct, Union))
            if not t.name:
                return self._record_text(t, lvl, scope)
            return f"{'struct' if k == Kind.STRUCT else 'union'} {self.tag_name(t.id)}"
        if k == Kind.ENUM or k == Kind.ENUM64:
            assert isinstance(t, (Enum, Enum64))
            if not t.name:
                if not t.values:  # "enum {}" is not C; keep the size
                    return _UNSIGNED.get(t.size, "unsigned int")
                return self._enum_text(t, lvl)
            return f"enum {self.tag_name(t.id)}"
        if k == Kind.FWD:
            assert isinstance(t, Fwd)
            return f"{'union' if t.is_union else 'struct'} {self.tag_name(t.id)}"
        if k == Kind.TYPEDEF:
            return self.ident_name(t.id)
        if isinstance(t, Int):
            return int_spelling(t)
        if isinstance(t, Float):
            return float_spelling(t)
        return "void"

    def _decl(self, type_id: int, inner: str, lvl: int,
              scope: set[str] | None = None) -> str:
        """``type_id`` declaring ``inner`` (a name or an abstract declarator)."""
        t = self.btf.type(type_id)
        k = t.kind
        if k == Kind.PTR:
            target = self.btf.skip_qualifiers(t.type_id)  # type: ignore[union-attr]
            inner = "*" + inner
            if target.kind in (Kind.ARRAY, Kind.FUNC_PROTO):
                inner = f"({inner})"
            return self._decl(t.type_id, inner, lvl)  # type: ignore[union-attr]
        if k == Kind.ARRAY:
            assert isinstance(t, Array)
            return self._decl(t.type_id, f"{inner}[{t.nelems}]", lvl)
        if k in (Kind.CONST, Kind.VOLATILE, Kind.RESTRICT, Kind.TYPE_TAG):
            target = self.btf.skip_qualifiers(t.type_id)  # type: ignore[union-attr]
            if k == Kind.TYPE_TAG:
                if not _IDENT.match(t.name):
                    return self._decl(t.type_id, inner, lvl, scope)  # type: ignore[union-attr]
                qual = f'__attribute__((btf_type_tag("{t.name}")))'
            else:
                qual = k.name.lower()
            if target.kind == Kind.FUNC_PROTO or (k == Kind.RESTRICT and target.kind != Kind.PTR):
                return self._decl(t.type_id, inner, lvl, scope)  # type: ignore[union-attr]
            if qual in _leading_qualifiers(inner):
                return self._decl(t.type_id, inner, lvl, scope)  # type: ignore[union-attr]
            return self._decl(t.type_id, f"{qual} {inner}".rstrip(), lvl,  # type: ignore[union-attr]
                              scope)
        if k == Kind.FUNC_PROTO:
            assert isinstance(t, FuncProto)
            return self._decl(t.return_type_id, f"{inner}({self._params(t, lvl)})", lvl)
        if k == Kind.TYPEDEF and t.name in TRANSPARENT_TYPEDEFS:
            return self._decl(t.type_id, inner, lvl, scope)  # type: ignore[union-attr]
        base = self._base(t, lvl, scope)
        quals = _leading_qualifiers(inner)
        if quals:  # "const char *p" rather than "char const *p"
            base = " ".join(quals) + " " + base
            inner = inner.split(None, len(quals))[len(quals)] if len(inner.split()) > len(
                quals) else ""
        return f"{base} {inner}" if inner else base

    def _params(self, t: FuncProto, lvl: int) -> str:
        if not t.params:
            return "void"
        if len(t.params) == 1 and t.params[0].type_id == 0:
            return ""  # an unprototyped "f()"
        used: set[str] = set()
        parts = []
        for p in t.params:
            if p.type_id == 0:
                parts.append("...")
                continue
            name = sanitize(p.name) if p.name else ""
            if name in self._idents_used or name in used:
                name = ""
            used.add(name)
            parts.append(self._decl(p.type_id, name, lvl))
        return ", ".join(parts)

    def _record_text(self, t: Composite, lvl: int, scope: set[str] | None) -> str:
        """``struct NAME { ... }`` with members, padding and attributes.

        ``scope`` is the enclosing record's member names when ``t`` is an
        anonymous member (its members live in the same C scope)."""
        kw = "struct" if t.kind == Kind.STRUCT else "union"
        head = f"{kw} {self.tag_name(t.id)} {{" if t.name else f"{kw} {{"
        if t.id in self._expanding:
            return "void"  # an anonymous record containing itself: bad BTF
        self._expanding.add(t.id)
        names = scope if scope is not None else set()
        plan = plan_record(self.btf, t)
        ind = "\t" * (lvl + 1)
        lines = []
        for item in plan.items:
            if isinstance(item, Pad):
                lines.extend(self._pad_lines(t, item, ind, names))
                continue
            m = t.members[item]
            mt = self.btf.type(m.type_id)
            bf = self.btf.member_bitfield(t, m)
            anon_member = (not m.name and mt.kind in (Kind.STRUCT, Kind.UNION)
                           and not mt.name and not bf.size)
            if anon_member:
                decl = self._decl(m.type_id, "", lvl + 1, names)
            else:
                name = _unique(sanitize(m.name) if m.name else "__anon", names)
                decl = self._decl(m.type_id, name, lvl + 1)
            lines.append(f"{ind}{decl}{f': {bf.size}' if bf.size else ''};")
        self._expanding.discard(t.id)
        if not lines:
            return head + "}"
        tail = "}" + (" __attribute__((packed))" if plan.packed else "")
        return head + "\n" + "\n".join(lines) + "\n" + "\t" * lvl + tail

    def _pad_lines(self, t: Composite, pad: Pad, ind: str, names: set[str]) -> list[str]:
        if t.kind == Kind.UNION:
            size = pad.end // 8
            if size <= 8:
                return [f"{ind}{_PAD_TYPES[64]}: {pad.end};"]
            return [f"{ind}unsigned char {_unique('__pad', names)}[{size}];"]
        start, end = pad.start, pad.end
        if end - start <= _MAX_PAD_BITFIELDS * 64:
            return [f"{ind}{_PAD_TYPES[unit]}: {width};" for unit, width in
                    pad_pieces(start, end)]
        # Too long for `long: 64;` lines (a size that lies may ask for 4 GiB):
        # whole bytes as one char array, which goes at the next byte in any layout.
        first, last = natural_offset(start, 8), end // 8 * 8
        return ([f"{ind}{_PAD_TYPES[u]}: {w};" for u, w in pad_pieces(start, first)]
                + [f"{ind}unsigned char {_unique('__pad', names)}[{(last - first) // 8}];"]
                + [f"{ind}{_PAD_TYPES[u]}: {w};" for u, w in pad_pieces(last, end)])

    def _enum_text(self, t: Enum | Enum64, lvl: int) -> str:
        head = f"enum {self.tag_name(t.id)} {{" if t.name else "enum {"
        ind = "\t" * (lvl + 1)
        lines = [f"{ind}{_unique(sanitize(v.name), self._idents_used)} = "
                 f"{_enum_literal(v.value)}," for v in t.values]
        text = head + "\n" + "\n".join(lines) + "\n" + "\t" * lvl + "}"
        if enum_natural_size(v.value for v in t.values) != t.size and t.size in _MODE:
            text += f" __attribute__((mode({_MODE[t.size]})))"
        return text
