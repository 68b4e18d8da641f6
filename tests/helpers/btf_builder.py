"""A small BTF writer for tests: add types of any kind, then emit the bytes.

Every ``add``-style method returns the new type's id, so types can refer to
each other as they are built::

    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    s = b.struct("pair", 8, [("a", i, 0), ("b", i, 32)])
    data = b.build()                      # little-endian .BTF bytes
    data = b.build("big", version=2)      # big-endian, with a corrupted header

Nothing is validated here: the point is to be able to write broken BTF too.
``raw_type`` writes any record word by word, ``build`` takes overrides for
every header field and for the sections themselves.  For split BTF pass
``base=`` (a builder or the base's type count and string-section length):
ids and string offsets then continue after the base's.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

KIND = {
    "INT": 1, "PTR": 2, "ARRAY": 3, "STRUCT": 4, "UNION": 5, "ENUM": 6, "FWD": 7,
    "TYPEDEF": 8, "VOLATILE": 9, "CONST": 10, "RESTRICT": 11, "FUNC": 12,
    "FUNC_PROTO": 13, "VAR": 14, "DATASEC": 15, "FLOAT": 16, "DECL_TAG": 17,
    "TYPE_TAG": 18, "ENUM64": 19,
}
INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
STATIC, GLOBAL, EXTERN = 0, 1, 2

#: A name: text, raw bytes, or a string offset used as it is (to point anywhere).
Name = typing.Union[str, bytes, int]
#: A member: (name, type_id, bit_offset) or (name, type_id, bit_offset, bitfield_size).
MemberSpec = Sequence[object]


def info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    """The ``info`` word of ``struct btf_type``."""
    return (int(kflag) << 31) | ((kind & 0x1F) << 24) | (vlen & 0xFFFF)


@dataclass
class BtfBuilder:
    """Accumulates types and strings; :meth:`build` emits a BTF blob."""

    base: BtfBuilder | tuple[int, int] | None = None
    #: One list of 32-bit words per type record.
    records: list[list[int]] = field(default_factory=list)
    strtab: bytearray = field(default_factory=bytearray)
    _offsets: dict[bytes, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.base is None:
            self.strtab += b"\0"
            self._offsets[b""] = 0

    # -- ids and strings ------------------------------------------------------

    @property
    def start_id(self) -> int:
        """Id of the first type added here (1, or the base's type count)."""
        if self.base is None:
            return 1
        if isinstance(self.base, BtfBuilder):
            return self.base.next_id
        return self.base[0]

    @property
    def start_str_off(self) -> int:
        if self.base is None:
            return 0
        if isinstance(self.base, BtfBuilder):
            return len(self.base.strtab)
        return self.base[1]

    @property
    def next_id(self) -> int:
        """The id the next added type will get."""
        return self.start_id + len(self.records)

    def string(self, s: str | bytes) -> int:
        """Offset of ``s`` in the string section, adding it if new ("" is 0).

        ``bytes`` are stored as they are, so names can be any bytes but NUL.
        """
        raw = s.encode() if isinstance(s, str) else s
        if raw == b"" and self.base is not None:
            return 0
        off = self._offsets.get(raw)
        if off is None:
            off = self.start_str_off + len(self.strtab)
            self.strtab += raw + b"\0"
            self._offsets[raw] = off
        return off

    def _name(self, name: Name) -> int:
        return name if isinstance(name, int) else self.string(name)

    # -- records --------------------------------------------------------------

    def raw_type(self, name: Name, kind: int, vlen: int, kflag: bool,
                 size_or_type: int, extra: Iterable[int] = ()) -> int:
        """Append one record verbatim; ``name`` may be a string or a raw offset."""
        words = [self._name(name), info(kind, vlen, kflag), size_or_type & 0xFFFFFFFF]
        words += [w & 0xFFFFFFFF for w in extra]
        self.records.append(words)
        return self.next_id - 1

    def int_(self, name: Name, size: int, *, signed: bool = False,
             encoding: int | None = None, bits_offset: int = 0,
             nr_bits: int | None = None) -> int:
        enc = encoding if encoding is not None else (INT_SIGNED if signed else 0)
        bits = size * 8 if nr_bits is None else nr_bits
        return self.raw_type(name, 1, 0, False, size,
                             [(enc << 24) | (bits_offset << 16) | bits])

    def ptr(self, type_id: int) -> int:
        return self.raw_type(0, 2, 0, False, type_id)

    def array(self, elem: int, index: int, nelems: int) -> int:
        return self.raw_type(0, 3, 0, False, 0, [elem, index, nelems])

    def _composite(self, kind: int, name: Name, size: int,
                   members: Sequence[MemberSpec], kflag: bool) -> int:
        extra: list[int] = []
        for m in members:
            mname, mtype, boff = m[0], m[1], m[2]
            bsize = m[3] if len(m) > 3 else 0
            assert isinstance(mname, (str, bytes, int)) and isinstance(mtype, int)
            assert isinstance(boff, int) and isinstance(bsize, int)
            off = (bsize << 24) | boff if kflag else boff
            extra += [self._name(mname), mtype, off]
        return self.raw_type(name, kind, len(members), kflag, size, extra)

    def struct(self, name: Name, size: int, members: Sequence[MemberSpec],
               *, kflag: bool = False) -> int:
        """Members are ``(name, type_id, bit_offset[, bitfield_size])``; with
        ``kflag`` the bitfield size is packed into the offset word."""
        return self._composite(4, name, size, members, kflag)

    def union(self, name: Name, size: int, members: Sequence[MemberSpec],
              *, kflag: bool = False) -> int:
        return self._composite(5, name, size, members, kflag)

    def enum(self, name: Name, size: int, values: Sequence[tuple[Name, int]],
             *, signed: bool = False) -> int:
        extra: list[int] = []
        for vname, v in values:
            extra += [self._name(vname), v & 0xFFFFFFFF]
        return self.raw_type(name, 6, len(values), signed, size, extra)

    def enum64(self, name: Name, size: int,
               values: Sequence[tuple[Name, int]], *, signed: bool = False) -> int:
        extra: list[int] = []
        for vname, v in values:
            v &= 0xFFFFFFFFFFFFFFFF
            extra += [self._name(vname), v & 0xFFFFFFFF, v >> 32]
        return self.raw_type(name, 19, len(values), signed, size, extra)

    def fwd(self, name: Name, *, union: bool = False) -> int:
        return self.raw_type(name, 7, 0, union, 0)

    def typedef(self, name: Name, type_id: int) -> int:
        return self.raw_type(name, 8, 0, False, type_id)

    def volatile(self, type_id: int) -> int:
        return self.raw_type(0, 9, 0, False, type_id)

    def const(self, type_id: int) -> int:
        return self.raw_type(0, 10, 0, False, type_id)

    def restrict(self, type_id: int) -> int:
        return self.raw_type(0, 11, 0, False, type_id)

    def type_tag(self, name: Name, type_id: int) -> int:
        return self.raw_type(name, 18, 0, False, type_id)

    def func(self, name: Name, proto: int, linkage: int = GLOBAL) -> int:
        return self.raw_type(name, 12, linkage, False, proto)

    def func_proto(self, ret: int, params: Sequence[tuple[Name, int]]) -> int:
        extra: list[int] = []
        for pname, ptype in params:
            extra += [self._name(pname), ptype]
        return self.raw_type(0, 13, len(params), False, ret, extra)

    def var(self, name: Name, type_id: int, linkage: int = GLOBAL) -> int:
        return self.raw_type(name, 14, 0, False, type_id, [linkage])

    def datasec(self, name: Name, size: int,
                entries: Sequence[tuple[int, int, int]]) -> int:
        """Entries are ``(type_id, offset, size)``."""
        extra: list[int] = []
        for e in entries:
            extra += list(e)
        return self.raw_type(name, 15, len(entries), False, size, extra)

    def float_(self, name: Name, size: int) -> int:
        return self.raw_type(name, 16, 0, False, size)

    def decl_tag(self, name: Name, type_id: int, component_idx: int = -1) -> int:
        return self.raw_type(name, 17, 0, False, type_id, [component_idx])

    # -- output ---------------------------------------------------------------

    def type_section(self, byteorder: str = "little") -> bytes:
        words = [w for rec in self.records for w in rec]
        return struct.pack(f"{'<' if byteorder == 'little' else '>'}{len(words)}I", *words)

    def build(self, byteorder: str = "little", *, magic: int = 0xEB9F, version: int = 1,
              flags: int = 0, hdr_len: int = 24, type_off: int | None = None,
              type_len: int | None = None, str_off: int | None = None,
              str_len: int | None = None, header_tail: bytes | None = None,
              types: bytes | None = None, strings: bytes | None = None,
              trailer: bytes = b"") -> bytes:
        """The BTF blob.  Every header field can be overridden (they default to
        the truthful values), ``types``/``strings`` replace the sections'
        bytes, ``header_tail`` fills a header longer than 24 bytes (zeros by
        default) and ``trailer`` is appended after everything."""
        tsec = self.type_section(byteorder) if types is None else types
        ssec = bytes(self.strtab) if strings is None else strings
        t_off = 0 if type_off is None else type_off
        t_len = len(tsec) if type_len is None else type_len
        s_off = len(tsec) if str_off is None else str_off
        s_len = len(ssec) if str_len is None else str_len
        e = "<" if byteorder == "little" else ">"
        hdr = struct.pack(e + "HBBIIIII", magic, version, flags, hdr_len,
                          t_off, t_len, s_off, s_len)
        if hdr_len > 24:
            hdr += header_tail if header_tail is not None else bytes(hdr_len - 24)
        return hdr + tsec + ssec + trailer
