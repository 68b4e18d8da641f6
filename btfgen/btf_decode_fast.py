"""Compiled decoding of valid BTF type sections, when ``btfgen._btf_decode`` is built.

:func:`decode` builds the same objects as :mod:`btfgen.btf_parse`'s reference
loop, in C (vmlinux: ~75 ms against ~0.35 s, loop check included).  It does
not explain problems: for a blob that the reference loop would reject, or
without the extension, it returns ``None`` and the reference loop runs,
raising the one-line error.
"""

from __future__ import annotations

import dataclasses
import typing
from array import array
from collections.abc import Callable

from btfgen.btf_model import (
    BtfType,
    Datasec,
    DeclTag,
    EnumValue,
    IntEncoding,
    Kind,
    Member,
    Param,
    VarSecinfo,
)

try:
    from btfgen import _btf_decode
except ImportError:  # built without a compiler: the reference loop decodes everything
    _btf_decode = None  # type: ignore[assignment]

_TYPE_CLASSES = {cls.kind: cls for cls in typing.get_args(BtfType)}
#: What the extension builds, by BTF kind (1..19: each model class's ``kind``),
#: then members, parameters, enumerators and section entries (20..23).
_CLASSES: tuple[type | None, ...] = (
    None, *(_TYPE_CLASSES[Kind(k)] for k in range(1, 20)),
    Member, Param, EnumValue, VarSecinfo,
)


def _plan(cls: type) -> tuple[type, tuple[object, ...]]:
    """The class and its slot descriptors in ``__init__``'s argument order.

    The extension fills the slots directly, which is all that a slotted
    dataclass ``__init__`` does when every field is an init field and there
    is no ``__post_init__``; anything else is refused here.
    """
    fields = dataclasses.fields(cls)
    names = tuple(f.name for f in fields)
    if getattr(cls, "__slots__", None) != names or hasattr(cls, "__post_init__") \
            or not all(f.init for f in fields):
        raise TypeError(f"{cls.__name__}: not a plain slotted dataclass")
    return cls, tuple(cls.__dict__[n] for n in names)


def _configure() -> bool:
    if _btf_decode is None:
        return False
    encodings = tuple(IntEncoding(v) if v in (0, 1, 2, 4) else None for v in range(5))
    _btf_decode.configure(tuple(None if c is None else _plan(c) for c in _CLASSES), encodings)
    return True


AVAILABLE = _configure()


def decode(words: array[int], start_id: int, names: dict[int, str],
           name_of: Callable[[int, int, int], str]
           ) -> tuple[list[BtfType], list[Datasec | DeclTag]] | None:
    """The types of a valid type section, and its DATASECs and DECL_TAGs (which
    refer to other types and are checked once all exist); ``None`` if the
    section has a problem or the extension is not built.

    ``words``: the section as native 32-bit words; ``names``: string offset ->
    name for the offsets known in advance; ``name_of(off, tid, kind)``: any
    other offset's name.  Beyond the reference loop's checks, a ``None`` here
    also covers reference loops (see :func:`btfgen.btf_parse.check_loops`).
    """
    if _btf_decode is None:
        return None
    return _btf_decode.decode(words, start_id, names, name_of)


__all__ = ["AVAILABLE", "decode"]
