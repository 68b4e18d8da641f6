"""Append types to an object's BTF without touching it: a split BTF on top.

Record types found outside the object's BTF (DWARF, a C header) are built as
:mod:`btfgen.btf_model` types in a :class:`BtfExtender`, whose
:meth:`~BtfExtender.finish` returns a split :class:`~btfgen.btf_model.Btf`
with the object's BTF as base: ids continue after the base's, so the
generator treats the new types like any other.
"""

from __future__ import annotations

from btfgen.btf_model import Btf, BtfHeader, BtfType, Int, IntEncoding, Kind, name_bytes

BTF_MAGIC = 0xEB9F


class BtfExtender:
    """Collects new types with ids after ``base``'s; see the module docstring."""

    def __init__(self, base: Btf) -> None:
        self.base = base
        self.start_id = base.type_count
        self.start_str_off = base.start_str_off + len(base.strings)
        self.types: list[BtfType] = []
        self._strings = bytearray(b"\0")
        self._str_index: dict[str, int] = {"": 0}
        self._ints: dict[tuple[str, int, int], int] = {}

    @property
    def next_id(self) -> int:
        """The id the next added type gets."""
        return self.start_id + len(self.types)

    def name_off(self, name: str) -> int:
        """The string offset of ``name`` in the extended string table (added if new)."""
        if name in self._str_index:
            return self.start_str_off + self._str_index[name] if name else 0
        off = len(self._strings)
        self._strings += name_bytes(name) + b"\0"
        self._str_index[name] = off
        return self.start_str_off + off

    def add(self, t: BtfType) -> int:
        """Append ``t`` (its ``id`` is set here) and return its id.

        A struct may be added before its members are filled in, so that
        members can refer to it (self-referencing types)."""
        t.id = self.next_id
        t.name_off = self.name_off(t.name) if t.name else 0
        self.types.append(t)
        return t.id

    def int_type(self, name: str, size: int, signed: bool, *, is_bool: bool = False,
                 is_char: bool = False) -> int:
        """An INT type: the base's one with this name and size if any, else a new one."""
        key = (name, size, int(signed) | (2 if is_bool else 0))
        if key in self._ints:
            return self._ints[key]
        for t in self.base.find(name, Kind.INT):
            if isinstance(t, Int) and t.size == size and t.signed == signed \
                    and t.is_bool == is_bool:
                self._ints[key] = t.id
                return t.id
        enc = IntEncoding.NONE
        if signed:
            enc |= IntEncoding.SIGNED
        if is_bool:
            enc |= IntEncoding.BOOL
        elif is_char:
            enc |= IntEncoding.CHAR
        tid = self.add(Int(0, name, 0, size, enc, 0, size * 8))
        self._ints[key] = tid
        return tid

    def finish(self) -> Btf:
        """The split BTF holding the added types (the base itself if none were added)."""
        if not self.types:
            return self.base
        strings = bytes(self._strings)
        header = BtfHeader(BTF_MAGIC, 1, 0, 24, 0, 0, 0, len(strings))
        return Btf(header=header, types=list(self.types), strings=strings,
                   byteorder=self.base.byteorder, base=self.base, start_id=self.start_id,
                   start_str_off=self.start_str_off)
