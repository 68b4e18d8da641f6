"""How C spells BTF types, and which type a C spelling names.

:func:`c_type_name` writes a type as C would in a cast (``const char *``,
``int (*)(void *)``); :func:`find_c_type` finds the type ``struct x``,
``union x``, ``enum x`` or a bare name refers to.  Every part of btfgen that
prints or reads a C type spelling goes through here.
"""

from __future__ import annotations

from btfgen.btf_model import (
    Array,
    Btf,
    BtfType,
    Const,
    Enum,
    Enum64,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Ptr,
    Restrict,
    Struct,
    TypeTag,
    Union,
    Volatile,
)
from btfgen.errors import BtfgenError, show

#: Declarators nested deeper than this are cut short (pointer cycles through
#: function prototypes are legal BTF).
_MAX_DEPTH = 32

#: ``struct``/``union``/``enum`` -> the kinds that keyword names.
KEYWORD_KINDS = {"struct": (Kind.STRUCT,), "union": (Kind.UNION,),
                 "enum": (Kind.ENUM, Kind.ENUM64)}
#: Kinds a bare name may name, in order of preference.
BARE_KINDS = (Kind.TYPEDEF, Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.INT,
              Kind.FLOAT)


def find_c_type(btf: Btf, spec: str) -> BtfType | None:
    """The type ``spec`` names: ``struct x``, ``union x``, ``enum x`` (enum64 too)
    or a bare name (typedef first, then :data:`BARE_KINDS` in order); None if
    there is none (a forward declaration does not count).  The name is taken
    as it is after the first space: BTF names may hold anything."""
    head, sep, rest = spec.partition(" ")
    if sep and head in KEYWORD_KINDS:
        kinds, name = KEYWORD_KINDS[head], rest  # names from BTF may hold spaces
    else:
        kinds, name = BARE_KINDS, spec
    for kind in kinds:
        found = btf.find(name, kind)
        if found:
            return found[0]
    key = int_name_key(spec)
    if key is not None:  # ``unsigned long`` is gcc's ``long unsigned int``
        for t in btf.types:
            if isinstance(t, Int) and int_name_key(t.name) == key:
                return t
    return None


#: Words of C's multi-word integer type names.
_INT_WORDS = frozenset({"unsigned", "signed", "short", "long", "int", "char", "_Bool"})


def int_name_key(spelling: str) -> tuple[str, ...] | None:
    """A canonical form of a C integer type name, so ``unsigned long`` finds BTF's
    ``long unsigned int`` (gcc's order) and ``unsigned`` finds ``unsigned int``;
    None when ``spelling`` is not an integer type name."""
    words = spelling.split()
    if not words or not set(words) <= _INT_WORDS:
        return None
    if "char" not in words:
        words = [w for w in words if w != "signed"]
        if "int" not in words and "_Bool" not in words:
            words.append("int")
    return tuple(sorted(words))


def c_type_name(btf: Btf, type_id: int) -> str:
    """How C spells type ``type_id`` in a cast: ``struct event``, ``u32``,
    ``char[16]``, ``const char *``, ``int (*)(void *)``."""
    try:
        return _decl(btf, type_id, "", 0).strip()
    except BtfgenError:
        return f"<type id {type_id}>"


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    if inner.startswith(("[", "(")) and not inner.startswith("(*"):
        return base + inner
    return f"{base} {inner}"


def _decl(btf: Btf, type_id: int, inner: str, depth: int) -> str:
    if depth > _MAX_DEPTH:
        return _join("...", inner)
    t = btf.type(type_id)
    if isinstance(t, Ptr):
        target = btf.type(t.type_id)
        star = "*" + inner
        if isinstance(target, (Array, FuncProto)):
            star = f"({star})"
        return _decl(btf, t.type_id, star, depth + 1)
    if isinstance(t, Array):
        return _decl(btf, t.type_id, f"{inner}[{t.nelems}]", depth + 1)
    if isinstance(t, FuncProto):
        params = ", ".join(
            "..." if p.type_id == 0 else c_type_name_depth(btf, p.type_id, depth + 1)
            for p in t.params
        ) or "void"
        return _decl(btf, t.return_type_id, f"{inner}({params})", depth + 1)
    if isinstance(t, (Const, Volatile, Restrict)):
        qual = {Const: "const", Volatile: "volatile", Restrict: "restrict"}[type(t)]
        if isinstance(btf.type(t.type_id), Ptr):
            return _decl(btf, t.type_id, f"{qual} {inner}".rstrip(), depth + 1)
        return f"{qual} {_decl(btf, t.type_id, inner, depth + 1)}"
    if isinstance(t, TypeTag):
        return _decl(btf, t.type_id, inner, depth + 1)
    return _join(_base_name(btf, t), inner)


def c_type_name_depth(btf: Btf, type_id: int, depth: int) -> str:
    """:func:`c_type_name` continuing an outer declarator's depth count."""
    return _decl(btf, type_id, "", depth).strip()


def _base_name(btf: Btf, t: BtfType) -> str:
    if t.name:
        return show(btf.c_spelling(t.id))
    if isinstance(t, (Struct, Union, Fwd, Enum, Enum64)):
        # an anonymous type: its keyword and a placeholder for the body
        return btf.c_spelling(t.id).rstrip() + " {...}"
    return "void"


