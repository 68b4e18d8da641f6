"""Record types from DWARF, for objects built with ``clang -g`` whose BTF lacks them.

BTF only describes what globals, maps and function prototypes reach; the event
struct a program fills on its stack is in DWARF only.  :class:`DwarfTypes`
reads the DWARF of an object with pyelftools and answers:

* which local variable lives at a stack offset of a function
  (``DW_OP_fbreg``; BPF's frame base is the bottom of the frame, so
  ``fbreg = r10 offset + stack depth``), including variables of inlined
  functions;
* which struct types the object's own source defines (not ``vmlinux.h`` or
  system headers), and which struct types locals point to;

and converts a type DIE into :mod:`btfgen.btf_model` types appended to a
:class:`~btfgen.btf_extend.BtfExtender`.  Named types the object's BTF already
has (same kind, name and size) are reused from it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from elftools.common.exceptions import DWARFError
from elftools.dwarf.locationlists import LocationParser
from elftools.elf.elffile import ELFFile

from btfgen.btf_extend import BtfExtender
from btfgen.btf_model import (
    Array,
    Const,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Fwd,
    Kind,
    Member,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    Union,
    Volatile,
)
from btfgen.elf.image import _PARSE_ERRORS

#: What pyelftools raises on damaged DWARF, found lazily while DIEs are read: it
#: also hands out None where a damaged file lacks data (hence AttributeError).
DWARF_ERRORS = (*_PARSE_ERRORS, DWARFError, AttributeError, RecursionError)
DW_OP_FBREG = 0x91
DW_OP_BREG10 = 0x7A
DW_OP_PIECE = 0x93
DW_OP_STACK_VALUE = 0x9F
_ATE_BOOLEAN, _ATE_FLOAT, _ATE_SIGNED, _ATE_SIGNED_CHAR = 0x02, 0x04, 0x05, 0x06
_ATE_UNSIGNED_CHAR = 0x08
_COMPOSITE = ("DW_TAG_structure_type", "DW_TAG_union_type")
_QUALIFIERS: dict[str, type[Const] | type[Volatile] | type[Restrict]] = {
    "DW_TAG_const_type": Const, "DW_TAG_volatile_type": Volatile,
    "DW_TAG_restrict_type": Restrict,
}
_MAX_DEPTH = 256

Die = Any  # elftools.dwarf.die.DIE (pyelftools ships no type hints)


@dataclass(frozen=True)
class Local:
    """A local variable at a fixed place in its function's frame."""

    name: str
    function: str
    fbreg: int
    die: Die


def _sleb128(data: list[int]) -> int:
    result = shift = 0
    for byte in data:
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result
    return result


def _uleb128(data: list[int], pos: int) -> tuple[int, int]:
    result = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return result, pos


def _frame_base(expr: list[int]) -> int | None:
    """The frame offset of byte 0 of a variable described by ``expr``.

    Understands ``DW_OP_fbreg N`` and ``DW_OP_breg10 N`` (r10 is the frame base),
    alone or as ``DW_OP_piece``s; None for anything else.
    """
    pos = piece_at = 0
    while pos < len(expr):
        op = expr[pos]
        if op in (DW_OP_FBREG, DW_OP_BREG10):
            off, _ = _sleb128_at(expr, pos + 1)
            return off - piece_at
        if op == DW_OP_PIECE:
            size, pos = _uleb128(expr, pos + 1)
            piece_at += size
        elif 0x50 <= op <= 0x6F or op == DW_OP_STACK_VALUE:  # DW_OP_regN: in a register
            pos += 1
        elif 0x70 <= op <= 0x8F:  # DW_OP_bregN of another register
            _, pos = _sleb128_at(expr, pos + 1)
        else:
            return None
    return None


def _sleb128_at(data: list[int], pos: int) -> tuple[int, int]:
    end = pos
    while end < len(data) and data[end] & 0x80:
        end += 1
    return _sleb128(data[pos:end + 1]), end + 1


def _name(die: Die) -> str:
    a = die.attributes.get("DW_AT_name")
    if a is None:
        return ""
    v = a.value
    return v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else str(v)


def _int_attr(die: Die, attr: str, default: int = 0) -> int:
    a = die.attributes.get(attr)
    return int(a.value) if a is not None and isinstance(a.value, int) else default


class DwarfTypes:
    """The DWARF of one ELF object (empty when it has none; never raises on bad DWARF)."""

    def __init__(self, elf_data: bytes) -> None:
        self.locals: list[Local] = []
        self.structs: list[Die] = []
        #: function name -> every variable DIE in it (frame or register resident)
        self.variables: dict[str, list[Die]] = {}
        #: C spelling ("struct event", "event_t") -> the first complete DIE so named
        self.named: dict[str, Die] = {}
        self._loc_parser: Any = None
        self._own_dirs: set[str] = set()
        self._cu_files: set[str] = set()
        try:
            elf = ELFFile(io.BytesIO(elf_data))
            if not elf.has_dwarf_info():
                return
            dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
            lists = dwarf.location_lists()
            self._loc_parser = LocationParser(lists) if lists is not None else None
            for cu in dwarf.iter_CUs():
                self._read_cu(dwarf, cu)
        except DWARF_ERRORS:
            self.locals, self.structs, self.variables, self.named = [], [], {}, {}

    @property
    def present(self) -> bool:
        """Whether the object has usable DWARF."""
        return bool(self.locals or self.structs or self.named)

    def _read_cu(self, dwarf: Any, cu: Any) -> None:
        top = cu.get_top_DIE()
        attr = top.attributes.get("DW_AT_comp_dir")
        comp_dir = attr.value.decode("utf-8", "replace") if attr is not None else ""
        cu_name = os.path.normpath(os.path.join(comp_dir, _name(top)))
        self._cu_files.add(cu_name)
        self._own_dirs.add(os.path.dirname(cu_name))
        lineprog = dwarf.line_program_for_CU(cu)
        files = self._file_names(lineprog, comp_dir)
        for die in top.iter_children():
            if die.tag in (*_COMPOSITE, "DW_TAG_enumeration_type", "DW_TAG_typedef") \
                    and _name(die) and "DW_AT_declaration" not in die.attributes:
                self.named.setdefault(c_name(die), die)
            if die.tag in _COMPOSITE and "DW_AT_declaration" not in die.attributes:
                f = files.get(_int_attr(die, "DW_AT_decl_file", -1), "")
                if self._own_file(f):
                    self.structs.append(die)
            elif die.tag == "DW_TAG_subprogram":
                fn = _name(die)
                if fn:
                    self._collect_locals(fn, die, 0)

    def _file_names(self, lineprog: Any, comp_dir: str) -> dict[int, str]:
        """The line program's file table as absolute paths.  Makefile builds record
        directories relative to the compile directory (``-Iinclude``, ``src/x.c``):
        those are joined to it, and count as the project's own when they lie in it."""
        out: dict[int, str] = {}
        if lineprog is None:
            return out
        entries = lineprog["file_entry"]
        dirs = lineprog["include_directory"]
        v5 = lineprog["version"] >= 5
        for i, entry in enumerate(entries):
            name = entry.name.decode("utf-8", "replace")
            d = entry.dir_index
            if v5:
                base = dirs[d].decode("utf-8", "replace") if d < len(dirs) else ""
            else:  # DWARF 4: index 0 is the compile directory
                base = dirs[d - 1].decode("utf-8", "replace") if 0 < d <= len(dirs) else ""
            if comp_dir and not os.path.isabs(base) and not os.path.isabs(name):
                self._own_dirs.add(os.path.normpath(os.path.join(comp_dir, base,
                                                                 os.path.dirname(name))))
            out[i if v5 else i + 1] = os.path.normpath(os.path.join(comp_dir, base, name))
        return out

    def _own_file(self, path: str) -> bool:
        base = os.path.basename(path)
        if not path or base == "vmlinux.h" or base.startswith("bpf_"):  # libbpf's, vendored
            return False
        return path in self._cu_files or os.path.dirname(path) in self._own_dirs

    def _collect_locals(self, fn: str, die: Die, depth: int) -> None:
        """The variables of ``fn``, those of the helpers inlined into it included:
        an inlined copy's variable carries its place (``DW_AT_location``) and names
        its abstract origin, which has the name and the type."""
        if depth > _MAX_DEPTH:
            return
        for child in die.iter_children():
            if child.tag == "DW_TAG_variable":
                origin = _origin(child)
                self.variables.setdefault(fn, []).append(origin)
                base = self._frame_offset(child)
                if base is not None and "DW_AT_type" in origin.attributes:
                    self.locals.append(Local(_name(origin), fn, base, origin))
            elif child.tag in ("DW_TAG_lexical_block", "DW_TAG_inlined_subroutine"):
                self._collect_locals(fn, child, depth + 1)

    def _frame_offset(self, var: Die) -> int | None:
        """Where ``var`` starts relative to the frame base, if it lives in the frame.

        clang says so with ``DW_OP_fbreg`` (frame base r10), or -- clang 19 --
        with a location list of ``DW_OP_breg10`` pieces; both count from the
        bottom of the frame.
        """
        loc = var.attributes.get("DW_AT_location")
        if loc is None:
            return None
        if loc.form == "DW_FORM_exprloc":
            return _frame_base(loc.value)
        if self._loc_parser is None:
            return None
        entries = self._loc_parser.parse_from_attribute(loc, var.cu["version"], var)
        for entry in entries if isinstance(entries, list) else [entries]:
            base = _frame_base(getattr(entry, "loc_expr", None) or [])
            if base is not None:
                return base
        return None

    # -- queries ------------------------------------------------------------------

    def local_at(self, function: str, fbreg: int) -> Local | None:
        """The variable of ``function`` (inlined callees included) at ``fbreg``."""
        for v in self.locals:
            if v.function == function and v.fbreg == fbreg:
                return v
        return None

    def locals_of(self, function: str) -> list[Local]:
        """Every frame-resident local of ``function``."""
        return [v for v in self.locals if v.function == function]

    def pointed_structs(self, function: str) -> Iterator[Die]:
        """Struct/union types that pointer-typed variables of ``function`` point to
        (register-held ones included: a ring buffer reservation lives in a register)."""
        for v in self.variables.get(function, ()):
            t = strip_modifiers(type_of(v))
            if t is not None and t.tag == "DW_TAG_pointer_type":
                target = strip_modifiers(type_of(t))
                if target is not None and target.tag in _COMPOSITE:
                    yield target

    def pointed_scalars(self, function: str) -> Iterator[Die]:
        """Integer, enum and float types (typedef names kept: ``__u32``) that
        pointer-typed variables of ``function`` point to."""
        for v in self.variables.get(function, ()):
            t = strip_modifiers(type_of(v))
            if t is not None and t.tag == "DW_TAG_pointer_type":
                target = strip_modifiers(type_of(t), keep_typedefs=True)
                bare = strip_modifiers(target)
                if bare is not None and bare.tag in ("DW_TAG_base_type",
                                                     "DW_TAG_enumeration_type"):
                    yield target


def _origin(die: Die) -> Die:
    """The DIE that holds ``die``'s name and type: its abstract origin (an inlined
    or concrete copy of a variable names the abstract one), else itself."""
    for _ in range(8):
        if "DW_AT_abstract_origin" not in die.attributes:
            break
        die = die.get_DIE_from_attribute("DW_AT_abstract_origin")
    return die


def type_of(die: Die) -> Die | None:
    """The DIE that ``die``'s ``DW_AT_type`` refers to (None for void)."""
    if "DW_AT_type" not in die.attributes:
        return None
    return die.get_DIE_from_attribute("DW_AT_type")


def strip_modifiers(die: Die | None, *, keep_typedefs: bool = False) -> Die | None:
    """Follow typedefs (unless kept) and qualifiers."""
    skip = set(_QUALIFIERS) | {"DW_TAG_atomic_type"}
    if not keep_typedefs:
        skip.add("DW_TAG_typedef")
    n = 0
    while die is not None and die.tag in skip and n < _MAX_DEPTH:
        die = type_of(die)
        n += 1
    return die


def die_size(die: Die | None) -> int:
    """sizeof() of a type DIE (0 when unknown)."""
    die = strip_modifiers(die)
    if die is None:
        return 0
    if "DW_AT_byte_size" in die.attributes:
        return _int_attr(die, "DW_AT_byte_size")
    if die.tag == "DW_TAG_pointer_type":
        return 8
    if die.tag == "DW_TAG_array_type":
        n = 1
        for dim in _dims(die):
            n *= dim
        return n * die_size(type_of(die))
    return 0


def c_name(die: Die | None) -> str:
    """How C names a type DIE: ``struct event``, ``u32``, ``union {...}``."""
    if die is None:
        return "void"
    word = {"DW_TAG_structure_type": "struct ", "DW_TAG_union_type": "union ",
            "DW_TAG_enumeration_type": "enum "}.get(die.tag, "")
    return f"{word}{_name(die) or '{...}'}"


def _dims(die: Die) -> list[int]:
    dims = []
    for sub in die.iter_children():
        if sub.tag != "DW_TAG_subrange_type":
            continue
        if "DW_AT_count" in sub.attributes:
            dims.append(_int_attr(sub, "DW_AT_count"))
        elif "DW_AT_upper_bound" in sub.attributes:
            dims.append(_int_attr(sub, "DW_AT_upper_bound") + 1)
        else:
            dims.append(0)  # flexible array member
    return dims or [0]


class DwarfConverter:
    """Turns type DIEs into model types in ``ext`` (memoised per DIE)."""

    def __init__(self, ext: BtfExtender) -> None:
        self.ext = ext
        self._done: dict[int, int] = {}

    def convert(self, die: Die | None, depth: int = 0) -> int:
        """The type id for ``die`` (0 for void); converts what it refers to."""
        if die is None:
            return 0
        if depth > _MAX_DEPTH:
            raise RecursionError
        key = die.offset
        if key in self._done:
            return self._done[key]
        tid = self._convert(die, depth)
        self._done[key] = tid
        return tid

    def _reuse(self, kind: Kind, name: str, size: int) -> int:
        if not name:
            return 0
        for t in self.ext.base.find(name, kind):
            try:
                if self.ext.base.size_of(t.id) == size:
                    return t.id
            except Exception:  # a base type without size: do not reuse
                continue
        return 0

    def _convert(self, die: Die, depth: int) -> int:
        tag, name, ext = die.tag, _name(die), self.ext
        if tag == "DW_TAG_base_type":
            enc, size = _int_attr(die, "DW_AT_encoding"), _int_attr(die, "DW_AT_byte_size")
            if enc == _ATE_FLOAT:
                return self._reuse(Kind.FLOAT, name, size) or ext.add(Float(0, name, 0, size))
            return ext.int_type(name, size, enc in (_ATE_SIGNED, _ATE_SIGNED_CHAR),
                                is_bool=enc == _ATE_BOOLEAN,
                                is_char=enc in (_ATE_SIGNED_CHAR, _ATE_UNSIGNED_CHAR))
        if tag in _COMPOSITE:
            return self._composite(die, name, depth)
        if tag == "DW_TAG_enumeration_type":
            return self._enum(die, name)
        if tag == "DW_TAG_typedef":
            target = type_of(die)
            size = die_size(die)
            reuse = self._reuse(Kind.TYPEDEF, name, size) if size else 0
            if reuse:
                return reuse
            t = Typedef(0, name, 0, 0)
            tid = ext.add(t)
            self._done[die.offset] = tid
            t.type_id = self.convert(target, depth + 1)
            return tid
        if tag == "DW_TAG_pointer_type":
            target = strip_modifiers(type_of(die), keep_typedefs=True)
            p = Ptr(0, "", 0, 0)
            tid = ext.add(p)
            self._done[die.offset] = tid
            p.type_id = self._pointee(target, depth)
            return tid
        if tag == "DW_TAG_array_type":
            elem = self.convert(type_of(die), depth + 1)
            index = ext.int_type("__ARRAY_SIZE_TYPE__", 4, False)
            for dim in reversed(_dims(die)):
                elem = ext.add(Array(0, "", 0, elem, index, dim))
            return elem
        if tag in _QUALIFIERS:
            inner = self.convert(type_of(die), depth + 1)
            qual: Const | Volatile | Restrict = _QUALIFIERS[tag](0, "", 0, inner)
            return ext.add(qual)
        if tag == "DW_TAG_atomic_type":
            return self.convert(type_of(die), depth + 1)
        return 0  # functions and anything else only appear behind pointers: void

    def _pointee(self, target: Die | None, depth: int) -> int:
        """Pointers are plain addresses in records: point to a forward
        declaration for structs (not the whole kernel type graph)."""
        if target is None or target.tag == "DW_TAG_subroutine_type":
            return 0
        if target.tag in _COMPOSITE:
            name = _name(target)
            if not name:
                return 0
            kind = Kind.STRUCT if target.tag == "DW_TAG_structure_type" else Kind.UNION
            for t in self.ext.base.find(name, kind):
                return t.id
            return self.ext.add(Fwd(0, name, 0, kind_flag=kind == Kind.UNION))
        return self.convert(target, depth + 1)

    def _composite(self, die: Die, name: str, depth: int) -> int:
        kind = Kind.STRUCT if die.tag == "DW_TAG_structure_type" else Kind.UNION
        if "DW_AT_declaration" in die.attributes:
            return self.ext.add(Fwd(0, name, 0, kind_flag=kind == Kind.UNION))
        size = _int_attr(die, "DW_AT_byte_size")
        reuse = self._reuse(kind, name, size)
        if reuse:
            return reuse
        t: Struct | Union = (Struct if kind == Kind.STRUCT else Union)(0, name, 0, size, [])
        tid = self.ext.add(t)
        self._done[die.offset] = tid
        for m in die.iter_children():
            if m.tag != "DW_TAG_member":
                continue
            bits = _int_attr(m, "DW_AT_bit_size")
            if "DW_AT_data_bit_offset" in m.attributes:
                off = _int_attr(m, "DW_AT_data_bit_offset")
            else:
                off = _int_attr(m, "DW_AT_data_member_location") * 8
                if bits and "DW_AT_bit_offset" in m.attributes:  # DWARF 2/3, little-endian
                    storage = _int_attr(m, "DW_AT_byte_size") or die_size(type_of(m))
                    off += storage * 8 - _int_attr(m, "DW_AT_bit_offset") - bits
            mname = _name(m)
            t.members.append(Member(mname, self.ext.name_off(mname) if mname else 0,
                                    self.convert(type_of(m), depth + 1), off, bits))
            if bits:
                t.kind_flag = True
        return tid

    def _enum(self, die: Die, name: str) -> int:
        size = _int_attr(die, "DW_AT_byte_size", 4)
        kind = Kind.ENUM64 if size == 8 else Kind.ENUM
        reuse = self._reuse(kind, name, size)
        if reuse:
            return reuse
        values = []
        for e in die.iter_children():
            if e.tag == "DW_TAG_enumerator":
                ename = _name(e)
                values.append(EnumValue(ename, self.ext.name_off(ename),
                                        _int_attr(e, "DW_AT_const_value")))
        base = strip_modifiers(type_of(die))
        signed = any(v.value < 0 for v in values) or (
            base is not None and _int_attr(base, "DW_AT_encoding") in (_ATE_SIGNED,
                                                                         _ATE_SIGNED_CHAR))
        cls = Enum64 if kind == Kind.ENUM64 else Enum
        return self.ext.add(cls(0, name, 0, size, values, kind_flag=signed))
