"""BTF bytes -> :class:`btfgen.btf_model.Btf`.

Everything that the file says is checked before it is trusted: header fields,
section bounds, kinds, string offsets, type references, kind-specific limits
and reference loops.  Any violation raises :class:`btfgen.errors.BtfError`
with a one-line description.  Both byte orders are accepted; the magic tells.
"""

from __future__ import annotations

import gc
import struct
import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import accumulate

from btfgen import btf_decode_fast
from btfgen.btf_model import (
    Array,
    Btf,
    BtfHeader,
    BtfType,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    VarSecinfo,
    Volatile,
)
from btfgen.errors import BtfError, quote_name

BTF_MAGIC = 0xEB9F
HEADER_SIZE = 24
#: libbpf's limits: a type id and a string offset must fit in this.
MAX_TYPE_ID = 0x00FFFFFF
MAX_STR_OFFSET = 0x7FFFFFFF

_INT_SIZES = frozenset({1, 2, 4, 8, 16})
_ENUM_SIZES = frozenset({1, 2, 4, 8})

def byteorder_of(data: bytes) -> str:
    """'little' or 'big' from the BTF magic; raises BtfError if it is neither."""
    if len(data) < 2:
        raise BtfError("truncated BTF: no header")
    magic = int.from_bytes(data[:2], "little")
    if magic == BTF_MAGIC:
        return "little"
    if magic == 0x9FEB:
        return "big"
    raise BtfError(f"bad BTF magic 0x{magic:04x} (expected 0xeb9f)")


#: ``struct btf_header`` up to ``layout_len`` (kernel 7.1's layout section).
LAYOUT_HEADER_SIZE = 32
#: ``struct btf_layout``: u8 info_sz, u8 elem_sz, u16 flags -- one per kind id.
LAYOUT_ENTRY_SIZE = 4
#: (info_sz, elem_sz) of every kind this parser knows, by kind id.
KNOWN_LAYOUT: dict[int, tuple[int, int]] = {
    Kind.VOID: (0, 0), Kind.INT: (4, 0), Kind.PTR: (0, 0), Kind.ARRAY: (12, 0),
    Kind.STRUCT: (0, 12), Kind.UNION: (0, 12), Kind.ENUM: (0, 8), Kind.FWD: (0, 0),
    Kind.TYPEDEF: (0, 0), Kind.VOLATILE: (0, 0), Kind.CONST: (0, 0), Kind.RESTRICT: (0, 0),
    Kind.FUNC: (0, 0), Kind.FUNC_PROTO: (0, 8), Kind.VAR: (4, 0), Kind.DATASEC: (0, 12),
    Kind.FLOAT: (0, 0), Kind.DECL_TAG: (4, 0), Kind.TYPE_TAG: (0, 0), Kind.ENUM64: (0, 12),
}


def parse_header(data: bytes) -> tuple[BtfHeader, str]:
    """Parse and bounds-check ``struct btf_header``.

    Header bytes past the fields known here are ignored, as libbpf's
    ``btf_parse_hdr`` ignores them (it reads the fields it knows and checks only
    that ``hdr_len`` fits the data; the kernel, stricter, wants them zero).  A
    header of at least 32 bytes carries the layout section (kernel 7.1): its
    offset must be 4-byte aligned, its length a whole number of 4-byte
    ``struct btf_layout`` entries, it must lie in the body without overlapping the
    type or string section, and the entries of the kinds known here must say
    what those kinds' records are (a layout that contradicts them describes some
    other format).  0/0 means no layout section.
    """
    order = byteorder_of(data)
    if len(data) < HEADER_SIZE:
        raise BtfError(f"truncated BTF: {len(data)} bytes, header needs {HEADER_SIZE}")
    fmt = "<HBBIIIII" if order == "little" else ">HBBIIIII"
    hdr = BtfHeader(*struct.unpack_from(fmt, data))
    if hdr.version != 1:
        raise BtfError(f"unsupported BTF version {hdr.version}")
    if hdr.hdr_len < HEADER_SIZE or hdr.hdr_len > len(data):
        raise BtfError(f"BTF header length {hdr.hdr_len} invalid for {len(data)} bytes")
    body = len(data) - hdr.hdr_len
    if hdr.type_off % 4:
        raise BtfError(f"BTF type section offset {hdr.type_off} is not 4-byte aligned")
    if hdr.type_len % 4:
        raise BtfError(f"BTF type section length {hdr.type_len} is not a multiple of 4")
    if hdr.type_off + hdr.type_len > body:
        raise BtfError(
            f"BTF type section [{hdr.type_off}, +{hdr.type_len}) overruns the {body}-byte body"
        )
    if hdr.str_off + hdr.str_len > body:
        raise BtfError(
            f"BTF string section [{hdr.str_off}, +{hdr.str_len}) overruns the {body}-byte body"
        )
    if _overlap(hdr.type_off, hdr.type_len, hdr.str_off, hdr.str_len):
        raise BtfError("BTF type and string sections overlap")
    if hdr.hdr_len >= LAYOUT_HEADER_SIZE:
        _parse_layout(data, hdr, order, body)
    return hdr, order


def _overlap(a_off: int, a_len: int, b_off: int, b_len: int) -> bool:
    return a_off < b_off + b_len and b_off < a_off + a_len


def _parse_layout(data: bytes, hdr: BtfHeader, order: str, body: int) -> None:
    e = "<" if order == "little" else ">"
    hdr.layout_off, hdr.layout_len = struct.unpack_from(e + "II", data, HEADER_SIZE)
    off, length = hdr.layout_off, hdr.layout_len
    if not off and not length:
        return
    if off % 4:
        raise BtfError(f"BTF layout section offset {off} is not 4-byte aligned")
    if length % LAYOUT_ENTRY_SIZE:
        raise BtfError(f"BTF layout section length {length} is not a multiple of "
                       f"{LAYOUT_ENTRY_SIZE}")
    if off + length > body:
        raise BtfError(f"BTF layout section [{off}, +{length}) overruns the {body}-byte body")
    if _overlap(off, length, hdr.type_off, hdr.type_len) or \
            _overlap(off, length, hdr.str_off, hdr.str_len):
        raise BtfError("BTF layout section overlaps the type or string section")
    start = hdr.hdr_len + off
    hdr.layout = tuple(struct.iter_unpack(e + "BBH", data[start:start + length]))
    for kind, (info_sz, elem_sz, _flags) in enumerate(hdr.layout):
        known = KNOWN_LAYOUT.get(kind)
        if known is not None and known != (info_sz, elem_sz):
            raise BtfError(
                f"BTF layout of kind {Kind(kind).name} is ({info_sz}, {elem_sz}) bytes, "
                f"expected {known}"
            )


def parse_btf(data: bytes, base: Btf | None = None) -> Btf:
    """Parse a BTF blob (the contents of ``.BTF`` or ``/sys/kernel/btf/*``).

    ``base`` is the base BTF of split BTF (kernel module BTF on vmlinux).
    """
    # Parsing vmlinux allocates ~10^6 objects and no cycles: the cyclic GC would
    # only rescan them over and over (a third of the time), so it is paused.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _parse(bytes(data), base)
    finally:
        if gc_was_enabled:
            gc.enable()


def _parse(data: bytes, base: Btf | None) -> Btf:
    hdr, order = parse_header(data)
    str_start = hdr.hdr_len + hdr.str_off
    strings = data[str_start:str_start + hdr.str_len]
    start_id = base.type_count if base is not None else 1
    start_str = (base.start_str_off + len(base.strings)) if base is not None else 0
    _check_strings(strings, split=base is not None, start_str=start_str)

    type_start = hdr.hdr_len + hdr.type_off
    words = array("I")
    if words.itemsize != 4:  # pragma: no cover - every CPython platform we know
        raise BtfError("platform has no 32-bit array type")
    words.frombytes(data[type_start:type_start + hdr.type_len])
    if order != sys.byteorder:
        words.byteswap()

    btf = Btf(
        header=hdr, types=[], strings=strings, byteorder=order, base=base,
        start_id=start_id, start_str_off=start_str,
    )
    btf.types = _parse_types(words, btf)
    return btf


def _check_strings(strings: bytes, *, split: bool, start_str: int) -> None:
    if start_str + len(strings) > MAX_STR_OFFSET:
        raise BtfError(f"BTF string section too large ({len(strings)} bytes)")
    if not strings:
        if split:
            return
        raise BtfError("BTF string section is empty")
    if not split and strings[0] != 0:
        raise BtfError("BTF string section does not start with an empty string")
    if strings[-1] != 0:
        raise BtfError("BTF string section is not NUL-terminated")


def _where(tid: int, kind_no: int) -> str:
    return f"type id {tid} ({Kind(kind_no).name})"


def _parse_types(words: array[int], btf: Btf) -> list[BtfType]:
    """Decode the type section; checks record bounds, kinds, string offsets,
    type references and reference loops.

    A valid section is decoded by :mod:`btfgen.btf_decode_fast` when it is
    built; the loop here is the reference, and the one that reports problems.
    """
    strings = btf.strings
    str_base = btf.start_str_off
    str_end = str_base + len(strings)
    base = btf.base
    # Every string that starts after a NUL, decoded once (splitting in C is far
    # cheaper than decoding name by name); other offsets go through name_of.
    raw_parts: list[bytes] | list[str]
    if strings.isascii():  # then str lengths are byte lengths
        raw_parts = parts = strings.decode("ascii").split("\0")
    else:
        raw_parts = strings.split(b"\0")
        parts = [p.decode("utf-8", "surrogateescape") for p in raw_parts]
    # The last part is what follows the final NUL: not a string.
    offsets = accumulate([len(p) + 1 for p in raw_parts[:-1]], initial=str_base)
    name_cache: dict[int, str] = dict(zip(offsets, parts[:-1], strict=False))
    name_cache[0] = ""
    find = strings.find

    def name_of(off: int, tid: int, kind_no: int) -> str:
        if off < str_base:
            assert base is not None  # str_base is 0 without a base
            got = base.string(off)
        elif off >= str_end:
            raise BtfError(
                f"{_where(tid, kind_no)}: name offset {off} out of range"
                f" (strings end at {str_end})"
            )
        else:  # inside a string: a suffix of it
            rel = off - str_base
            got = strings[rel:find(b"\0", rel)].decode("utf-8", "surrogateescape")
        name_cache[off] = got
        return got

    fast = btf_decode_fast.decode(words, btf.start_id, name_cache, name_of)
    if fast is not None:
        btf.types, checked_fast = fast
        _check_later(btf, checked_fast)
        return btf.types

    types: list[BtfType] = []
    append = types.append
    words_fixed, words_per_vlen = _EXTRA_WORDS, _WORDS_PER_VLEN
    n = len(words)
    i = 0
    tid = btf.start_id
    max_ref = 0  # largest type id referenced anywhere: checked once at the end
    funcs: list[Func] = []
    checked: list[BtfType] = []  # DATASEC and DECL_TAG: checked once all types exist
    while i < n:
        if i + 3 > n:
            raise BtfError(f"type id {tid}: record truncated at end of type section")
        name_off, info, size_type = words[i], words[i + 1], words[i + 2]
        i += 3
        k = (info >> 24) & 0x1F
        vlen = info & 0xFFFF
        kflag = info >= 0x80000000
        if k == 0 or k > 19:
            raise BtfError(f"type id {tid}: unknown BTF kind {k}")
        extra = words_fixed[k] + words_per_vlen[k] * vlen
        if i + extra > n:
            raise BtfError(
                f"{_where(tid, k)}: {extra * 4} bytes of data (vlen {vlen})"
                " overrun the type section"
            )
        name = name_cache.get(name_off)
        if name is None:
            name = name_of(name_off, tid, k)
        t: BtfType
        if k == 4 or k == 5:  # STRUCT, UNION
            members = []
            for j in range(i, i + extra, 3):
                moff = words[j]
                mname = name_cache.get(moff)
                if mname is None:
                    mname = name_of(moff, tid, k)
                off = words[j + 2]
                if kflag:
                    members.append(Member(mname, moff, words[j + 1], off & 0xFFFFFF, off >> 24))
                else:
                    members.append(Member(mname, moff, words[j + 1], off, 0))
            if vlen:
                max_ref = max(max_ref, max(words[i + 1:i + extra:3]))
            t = (Struct if k == 4 else Union)(tid, name, name_off, size_type, members, kflag)
        elif k == 12:  # FUNC
            t = Func(tid, name, name_off, size_type, vlen, kflag)
            funcs.append(t)
            if size_type > max_ref:
                max_ref = size_type
        elif k == 13:  # FUNC_PROTO
            params = []
            for j in range(i, i + extra, 2):
                poff = words[j]
                pname = name_cache.get(poff)
                if pname is None:
                    pname = name_of(poff, tid, k)
                params.append(Param(pname, poff, words[j + 1]))
            max_ref = max(max_ref, size_type, max(words[i + 1:i + extra:2], default=0))
            t = FuncProto(tid, name, name_off, size_type, params, kflag)
        elif k == 2 or (8 <= k <= 11) or k == 18:  # PTR, TYPEDEF, qualifiers, TYPE_TAG
            if size_type > max_ref:
                max_ref = size_type
            t = _REF_CLASSES[k](tid, name, name_off, size_type, kflag)
            if k != 2 and k != 9 and k != 10 and k != 11 and not name:
                raise BtfError(f"{_where(tid, k)}: has no name")
        elif k == 1:  # INT
            v = words[i]
            enc = (v >> 24) & 0x0F
            bits_offset = (v >> 16) & 0xFF
            nr_bits = v & 0xFF
            if size_type not in _INT_SIZES:
                raise BtfError(f"{_where(tid, k)}: invalid size {size_type}")
            if nr_bits > 128 or bits_offset + nr_bits > size_type * 8:
                raise BtfError(
                    f"{_where(tid, k)}: {nr_bits} bits at offset {bits_offset} exceed its size"
                )
            if enc not in (0, 1, 2, 4):
                raise BtfError(f"{_where(tid, k)}: invalid encoding 0x{enc:x}")
            t = Int(tid, name, name_off, size_type, _ENCODINGS[enc], bits_offset, nr_bits, kflag)
        elif k == 3:  # ARRAY
            max_ref = max(max_ref, words[i], words[i + 1])
            t = Array(tid, name, name_off, words[i], words[i + 1], words[i + 2], kflag)
        elif k == 6 or k == 19:  # ENUM, ENUM64
            if size_type not in _ENUM_SIZES:
                raise BtfError(f"{_where(tid, k)}: invalid size {size_type}")
            values = []
            step = 2 if k == 6 else 3
            for j in range(i, i + extra, step):
                voff = words[j]
                vname = name_cache.get(voff)
                if vname is None:
                    vname = name_of(voff, tid, k)
                if k == 6:
                    v = words[j + 1]
                    if kflag and v >= 0x80000000:
                        v -= 0x100000000
                else:
                    v = words[j + 1] | (words[j + 2] << 32)
                    if kflag and v >> 63:
                        v -= 1 << 64
                values.append(EnumValue(vname, voff, v))
            t = (Enum if k == 6 else Enum64)(tid, name, name_off, size_type, values, kflag)
        elif k == 7:
            t = Fwd(tid, name, name_off, kflag)
        elif k == 14:  # VAR
            if not name:
                raise BtfError(f"{_where(tid, k)}: has no name")
            if size_type > max_ref:
                max_ref = size_type
            t = Var(tid, name, name_off, size_type, words[i], kflag)
        elif k == 15:  # DATASEC
            secinfos = [
                VarSecinfo(words[j], words[j + 1], words[j + 2]) for j in range(i, i + extra, 3)
            ]
            t = Datasec(tid, name, name_off, size_type, secinfos, kflag)
            checked.append(t)
        elif k == 16:  # FLOAT
            if size_type not in (2, 4, 8, 12, 16):
                raise BtfError(f"{_where(tid, k)}: invalid size {size_type}")
            t = Float(tid, name, name_off, size_type, kflag)
        else:  # 17: DECL_TAG
            if not name:
                raise BtfError(f"{_where(tid, k)}: has no name")
            cidx = words[i]
            if size_type > max_ref:
                max_ref = size_type
            t = DeclTag(tid, name, name_off, size_type,
                        cidx - 0x100000000 if cidx >= 0x80000000 else cidx, kflag)
            checked.append(t)
        append(t)
        i += extra
        tid += 1
        if tid > MAX_TYPE_ID + 1:
            raise BtfError(f"too many BTF types (more than {MAX_TYPE_ID})")

    btf.types = types
    if max_ref >= tid:
        _report_bad_reference(btf)
    start = btf.start_id
    for f in funcs:
        idx = f.type_id - start
        proto = types[idx] if idx >= 0 else btf.type(f.type_id)
        if type(proto) is not FuncProto:
            raise BtfError(f"type id {f.id} (FUNC): type id {f.type_id} is not a FUNC_PROTO")
        if f.linkage > 2:
            raise BtfError(f"type id {f.id} (FUNC): invalid linkage {f.linkage}")
    _check_later(btf, checked)
    check_loops(btf)
    return types


def _check_later(btf: Btf, checked: Sequence[BtfType]) -> None:
    """Check the DATASECs and DECL_TAGs, which refer to types after them."""
    for t in checked:
        if isinstance(t, Datasec):
            _check_datasec(btf, t)
        else:
            _check_decl_tag(btf, t, f"type id {t.id} (DECL_TAG)")  # type: ignore[arg-type]


#: 32-bit words after ``struct btf_type``: fixed, and per ``vlen``, by kind.
_EXTRA_WORDS = (0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0)
_WORDS_PER_VLEN = (0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3)
_REF_CLASSES: dict[int, type] = {
    2: Ptr, 8: Typedef, 9: Volatile, 10: Const, 11: Restrict, 18: TypeTag,
}
_ENCODINGS = {e.value: e for e in (IntEncoding(0), IntEncoding(1), IntEncoding(2), IntEncoding(4))}


def _report_bad_reference(btf: Btf) -> None:
    """Find and report the first out-of-range reference (only called when one exists)."""
    count = btf.type_count
    for t in btf.types:
        where = f"type id {t.id} ({t.kind.name})"
        refs: list[tuple[str, int]] = []
        if isinstance(t, (Struct, Union)):
            refs = [(f"member {quote_name(m.name)}", m.type_id) for m in t.members]
        elif isinstance(t, FuncProto):
            refs = [("return type", t.return_type_id)]
            refs += [(f"parameter {quote_name(p.name)}", p.type_id) for p in t.params]
        elif isinstance(t, Array):
            refs = [("element type", t.type_id), ("index type", t.index_type_id)]
        elif isinstance(t, (Ptr, Typedef, Volatile, Const, Restrict, TypeTag, Func, Var,
                            DeclTag)):
            refs = [("type", t.type_id)]
        for what, ref in refs:
            if ref >= count:
                raise BtfError(
                    f"{where}: {what} refers to type id {ref}, out of range (max {count - 1})"
                )
    raise AssertionError("no bad reference found")  # pragma: no cover


def _check_datasec(btf: Btf, t: Datasec) -> None:
    where = f"type id {t.id} (DATASEC)"
    for v in t.vars:
        if v.type_id >= btf.type_count or v.type_id == 0:
            raise BtfError(f"{where}: variable type id {v.type_id} out of range")
        if btf.type(v.type_id).kind not in (Kind.VAR, Kind.FUNC):
            raise BtfError(f"{where}: entry type id {v.type_id} is not a VAR")


def _check_decl_tag(btf: Btf, t: DeclTag, where: str) -> None:
    idx = t.component_idx
    if idx < -1:
        raise BtfError(f"{where}: invalid component index {idx}")
    if idx == -1:
        return
    target = btf.type(t.type_id)
    if isinstance(target, (Struct, Union)):
        n = len(target.members)
    elif isinstance(target, Func):
        proto = btf.type(target.type_id)
        n = len(proto.params) if isinstance(proto, FuncProto) else 0
    else:
        raise BtfError(f"{where}: component index {idx} on a {target.kind.name}")
    if idx >= n:
        raise BtfError(f"{where}: component index {idx} out of range ({n} components)")


def check_loops(btf: Btf) -> None:
    """Reject types that contain themselves by value.

    Loops through pointers and function prototypes are legal C (a list node
    points to itself); loops through typedefs, qualifiers, arrays, VARs or
    struct/union members are not, and would make sizes infinite.
    """
    start = btf.start_id
    types = btf.types
    composite = _COMPOSITE_CLASSES
    value_ref = _VALUE_REF_CLASSES
    # 0 = unvisited, 1 = on the current path, 2 = done (or holds no type by value)
    state = bytearray(
        0 if type(t) in composite or type(t) in value_ref else 2 for t in types
    )

    def edges(t: BtfType) -> Iterator[int]:
        if type(t) in composite:
            return (m.type_id - start for m in t.members)  # type: ignore[union-attr]
        return iter((t.type_id - start,))  # type: ignore[union-attr]

    for root in range(len(types)):
        if state[root]:
            continue
        state[root] = 1
        stack = [(root, edges(types[root]))]
        while stack:
            idx, it = stack[-1]
            for r in it:
                if r < 0 or state[r] == 2:
                    continue  # void, in the base (checked there), or done
                if state[r] == 1:
                    bad = types[idx]
                    raise BtfError(
                        f"type id {bad.id} ({bad.kind.name}): reference loop through"
                        f" type id {r + start}"
                    )
                state[r] = 1
                stack.append((r, edges(types[r])))
                break
            else:
                state[idx] = 2
                stack.pop()


_COMPOSITE_CLASSES: frozenset[type] = frozenset({Struct, Union})
_VALUE_REF_CLASSES: frozenset[type] = frozenset(
    {Typedef, Volatile, Const, Restrict, TypeTag, Array, Var}
)
