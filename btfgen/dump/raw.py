"""``btfgen dump --format raw``: the text of ``bpftool btf dump file F format raw``.

The output matches bpftool 7.1 byte for byte: one ``[id] KIND 'name' ...``
line per type, followed by one tab-indented line per member, enumerator,
parameter or section entry.  Names are the original bytes of the string
table; the returned ``str`` carries bytes that are not UTF-8 as
``surrogateescape`` code points, so encode it with
``.encode("utf-8", "surrogateescape")`` to get bpftool's exact bytes.
For split BTF only the split part is printed, as bpftool does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from btfgen.btf_model import (
    Array,
    Btf,
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
    Member,
    Param,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    Volatile,
)

_INT_ENCODING = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_KIND_NAME: dict[type, str] = {
    cls: cls.kind.name
    for cls in (Int, Ptr, Array, Struct, Union, Enum, Fwd, Typedef, Volatile, Const, Restrict,
                Func, FuncProto, Var, Datasec, Float, DeclTag, TypeTag, Enum64)
}


#: Types per chunk of :func:`iter_raw`: ~100 KB of text, so that a vmlinux dump
#: never holds its ~20 MB of text (and a copy per join and encode) at once.
CHUNK_TYPES = 1024


def format_raw(btf: Btf) -> str:
    """Every type of ``btf`` (not its base) as bpftool's raw dump prints it."""
    return "".join(iter_raw(btf))


def iter_raw(btf: Btf) -> Iterator[str]:
    """:func:`format_raw`'s text in chunks of whole lines, for writing as it is made."""
    out: list[str] = []
    emit = out.append
    formatters = _FORMATTERS
    types = btf.types
    for start in range(0, len(types), CHUNK_TYPES):
        for t in types[start:start + CHUNK_TYPES]:
            # bpftool says (anon) for name offset 0 only: an offset that points at
            # an empty string prints as ''.
            name = t.name if t.name_off else "(anon)"
            cls = type(t)
            # FUNC and FUNC_PROTO are most of vmlinux: they are inlined.
            if cls is Func:
                linkage = _FUNC_LINKAGE.get(t.linkage, "(unknown)")  # type: ignore[union-attr]
                emit(f"[{t.id}] FUNC '{name}' type_id={t.type_id} linkage={linkage}\n")  # type: ignore[union-attr]
            elif cls is FuncProto:
                emit(f"[{t.id}] FUNC_PROTO '{name}' ret_type_id={t.return_type_id}"  # type: ignore[union-attr]
                     f" vlen={len(t.params)}\n")  # type: ignore[union-attr]
                for p in t.params:  # type: ignore[union-attr]
                    emit(f"\t'{p.name if p.name_off else '(anon)'}' type_id={p.type_id}\n")
            else:
                fmt = formatters.get(cls)
                if fmt is None:  # PTR, TYPEDEF, qualifiers, TYPE_TAG
                    emit(f"[{t.id}] {_KIND_NAME[cls]} '{name}' type_id={t.type_id}\n")  # type: ignore[union-attr]
                else:
                    emit(f"[{t.id}] {_KIND_NAME[cls]} '{name}'{fmt(btf, t)}\n")
        yield "".join(out)
        out.clear()


def _name(x: BtfType | Member | Param | EnumValue) -> str:
    return x.name if x.name_off else "(anon)"


def _int(btf: Btf, t: Int) -> str:
    enc = _INT_ENCODING.get(int(t.encoding), "UNKN")
    return f" size={t.size} bits_offset={t.bits_offset} nr_bits={t.nr_bits} encoding={enc}"


def _array(btf: Btf, t: Array) -> str:
    return f" type_id={t.type_id} index_type_id={t.index_type_id} nr_elems={t.nelems}"


def _composite(btf: Btf, t: Struct | Union) -> str:
    parts = [f" size={t.size} vlen={len(t.members)}"]
    for m in t.members:
        name = m.name if m.name_off else "(anon)"
        line = f"\n\t'{name}' type_id={m.type_id} bits_offset={m.bit_offset}"
        if m.bitfield_size:
            line += f" bitfield_size={m.bitfield_size}"
        parts.append(line)
    return "".join(parts)


def _enum(btf: Btf, t: Enum) -> str:
    enc = "SIGNED" if t.kind_flag else "UNSIGNED"
    parts = [f" encoding={enc} size={t.size} vlen={len(t.values)}"]
    parts += [f"\n\t'{_name(v)}' val={v.value}" for v in t.values]
    return "".join(parts)


def _enum64(btf: Btf, t: Enum64) -> str:
    enc, suffix = ("SIGNED", "LL") if t.kind_flag else ("UNSIGNED", "ULL")
    parts = [f" encoding={enc} size={t.size} vlen={len(t.values)}"]
    parts += [f"\n\t'{_name(v)}' val={v.value}{suffix}" for v in t.values]
    return "".join(parts)


def _fwd(btf: Btf, t: Fwd) -> str:
    return " fwd_kind=union" if t.kind_flag else " fwd_kind=struct"


def _var(btf: Btf, t: Var) -> str:
    return f" type_id={t.type_id}, linkage={_VAR_LINKAGE.get(t.linkage, '(unknown)')}"


def _datasec(btf: Btf, t: Datasec) -> str:
    parts = [f" size={t.size} vlen={len(t.vars)}"]
    for v in t.vars:
        target = btf.type(v.type_id)
        parts.append(f"\n\ttype_id={v.type_id} offset={v.offset} size={v.size}"
                     f" ({target.kind.name} '{_name(target)}')")
    return "".join(parts)


def _float(btf: Btf, t: Float) -> str:
    return f" size={t.size}"


def _decl_tag(btf: Btf, t: DeclTag) -> str:
    return f" type_id={t.type_id} component_idx={t.component_idx}"


_FORMATTERS: dict[type, Callable[[Btf, BtfType], str]] = {
    Int: _int, Array: _array, Struct: _composite, Union: _composite, Enum: _enum,  # type: ignore[dict-item]
    Enum64: _enum64, Fwd: _fwd, Var: _var,  # type: ignore[dict-item]
    Datasec: _datasec, Float: _float, DeclTag: _decl_tag,  # type: ignore[dict-item]
}
