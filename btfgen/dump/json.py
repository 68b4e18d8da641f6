"""``btfgen dump --format json``: the parsed model as JSON.

The document is one object::

    {
      "byteorder": "little" | "big",
      "header": {"magic", "version", "flags", "hdr_len",
                 "type_off", "type_len", "str_off", "str_len"},
      "start_id": 1,            # first id of this BTF (> 1 for split BTF)
      "start_str_off": 0,       # first string offset (> 0 for split BTF)
      "types": [TYPE, ...]      # this BTF's own types, in id order
    }

Every TYPE has ``id``, ``kind`` (``"INT"``, ``"STRUCT"`` ...), ``name``,
``name_off`` and ``kind_flag``, then the fields of its kind:

=============================  ==============================================
INT                            size, encoding (NONE/SIGNED/CHAR/BOOL),
                               bits_offset, nr_bits
PTR, TYPEDEF, VOLATILE, CONST,  type_id
RESTRICT, TYPE_TAG
ARRAY                          type_id, index_type_id, nelems
STRUCT, UNION                  size, members: [{name, name_off, type_id,
                               bit_offset, bitfield_size}]
ENUM, ENUM64                   size, signed, values: [{name, name_off, value}]
FWD                            fwd_kind (struct/union)
FUNC                           type_id, linkage (static/global/extern)
FUNC_PROTO                     return_type_id, params: [{name, name_off,
                               type_id}]
VAR                            type_id, linkage
DATASEC                        size, vars: [{type_id, offset, size}]
FLOAT                          size
DECL_TAG                       type_id, component_idx
=============================  ==============================================

Member ``bit_offset``/``bitfield_size`` are as encoded (see
:class:`btfgen.btf_model.Member`).  Enumerator values are already signed when
the enum is.  A name that is not valid UTF-8 is given with U+FFFD for its bad
bytes in ``name`` plus its exact bytes as hex in ``name_hex``.
"""

from __future__ import annotations

import json
from typing import Any

from btfgen.btf_model import (
    Array,
    Btf,
    BtfType,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Struct,
    Union,
    Var,
    name_bytes,
)

_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_ENCODING = {
    IntEncoding.NONE: "NONE", IntEncoding.SIGNED: "SIGNED",
    IntEncoding.CHAR: "CHAR", IntEncoding.BOOL: "BOOL",
}

JsonDict = dict[str, Any]


def format_json(btf: Btf) -> str:
    """The model of ``btf`` (its own types, not its base's) as a JSON document."""
    h = btf.header
    doc: JsonDict = {
        "byteorder": btf.byteorder,
        "header": {
            "magic": h.magic, "version": h.version, "flags": h.flags, "hdr_len": h.hdr_len,
            "type_off": h.type_off, "type_len": h.type_len,
            "str_off": h.str_off, "str_len": h.str_len,
        },
        "start_id": btf.start_id,
        "start_str_off": btf.start_str_off,
        "types": [type_to_json(t) for t in btf.types],
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _named(name: str, name_off: int) -> JsonDict:
    if name.isascii():
        return {"name": name, "name_off": name_off}
    raw = name_bytes(name)
    text = raw.decode("utf-8", "replace")
    if text == name:
        return {"name": name, "name_off": name_off}
    return {"name": text, "name_hex": raw.hex(), "name_off": name_off}


def _linkage(value: int) -> str | int:
    return _LINKAGE.get(value, value)


def type_to_json(t: BtfType) -> JsonDict:
    """One type as the JSON object described in the module docstring."""
    d: JsonDict = {"id": t.id, "kind": t.kind.name, **_named(t.name, t.name_off),
                   "kind_flag": bool(t.kind_flag)}
    if isinstance(t, Int):
        d.update(size=t.size, encoding=_ENCODING.get(t.encoding, int(t.encoding)),
                 bits_offset=t.bits_offset, nr_bits=t.nr_bits)
    elif isinstance(t, Array):
        d.update(type_id=t.type_id, index_type_id=t.index_type_id, nelems=t.nelems)
    elif isinstance(t, (Struct, Union)):
        d["size"] = t.size
        d["members"] = [
            {**_named(m.name, m.name_off), "type_id": m.type_id, "bit_offset": m.bit_offset,
             "bitfield_size": m.bitfield_size}
            for m in t.members
        ]
    elif isinstance(t, (Enum, Enum64)):
        d.update(size=t.size, signed=t.signed)
        d["values"] = [{**_named(v.name, v.name_off), "value": v.value} for v in t.values]
    elif isinstance(t, Fwd):
        d["fwd_kind"] = "union" if t.kind_flag else "struct"
    elif isinstance(t, (Func, Var)):
        d.update(type_id=t.type_id, linkage=_linkage(t.linkage))
    elif isinstance(t, FuncProto):
        d["return_type_id"] = t.return_type_id
        d["params"] = [{**_named(p.name, p.name_off), "type_id": p.type_id} for p in t.params]
    elif isinstance(t, Datasec):
        d["size"] = t.size
        d["vars"] = [{"type_id": v.type_id, "offset": v.offset, "size": v.size} for v in t.vars]
    elif isinstance(t, Float):
        d["size"] = t.size
    elif isinstance(t, DeclTag):
        d.update(type_id=t.type_id, component_idx=t.component_idx)
    else:  # PTR, TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG
        d["type_id"] = t.type_id  # type: ignore[union-attr]
    return d
