"""Validate ``.BTF.ext`` (function info, line info, CO-RE relocations).

btfgen keeps the section's bytes as they are; this module checks the layout the
way libbpf does when it opens an object (header, sub-section bounds and
alignment, record sizes, per-section record counts and names) and summarises
how many records each ELF section has, and the root types of the CO-RE
relocations (the kernel types the program reads).  It is btfgen's one reader
of ``.BTF.ext``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from btfgen.btf_model import Btf
from btfgen.errors import ObjectError

BTF_EXT_MAGIC = 0xEB9F
#: magic..line_info_len; the CO-RE relocation pair after it is optional.
_MIN_HEADER = 24
_FULL_HEADER = 32
#: Smallest record libbpf accepts for each kind of info.
_MIN_RECORD = {"func_info": 8, "line_info": 16, "core_relo": 16}


@dataclass
class BtfExtInfo:
    """What ``.BTF.ext`` describes, per kind: ELF section name -> record count."""

    version: int
    flags: int
    hdr_len: int
    func_info: dict[str, int] = field(default_factory=dict)
    line_info: dict[str, int] = field(default_factory=dict)
    core_relo: dict[str, int] = field(default_factory=dict)
    #: The root type id of every CO-RE relocation, in file order.
    core_relo_type_ids: list[int] = field(default_factory=list)


def parse_btf_ext(data: bytes, btf: Btf, byteorder: str) -> BtfExtInfo:
    """Check ``data`` (the ``.BTF.ext`` bytes) against ``btf``'s strings."""
    e = "<" if byteorder == "little" else ">"
    if len(data) < 8:
        raise ObjectError(f"bad .BTF.ext: {len(data)} bytes, too short for a header")
    magic, version, flags, hdr_len = struct.unpack_from(e + "HBBI", data)
    if magic != BTF_EXT_MAGIC:
        raise ObjectError(f"bad .BTF.ext: magic 0x{magic:04x} (expected 0xeb9f)")
    if version != 1:
        raise ObjectError(f"bad .BTF.ext: unsupported version {version}")
    if flags:
        raise ObjectError(f"bad .BTF.ext: unsupported flags 0x{flags:x}")
    if hdr_len < _MIN_HEADER or hdr_len > len(data):
        raise ObjectError(f"bad .BTF.ext: header length {hdr_len} invalid for {len(data)} bytes")
    info = BtfExtInfo(version=version, flags=flags, hdr_len=hdr_len)
    n_pairs = 3 if hdr_len >= _FULL_HEADER else 2
    pairs = struct.unpack_from(e + "II" * n_pairs, data, 8)
    body = data[hdr_len:]
    for i, kind in enumerate(("func_info", "line_info", "core_relo")[:n_pairs]):
        off, length = pairs[2 * i], pairs[2 * i + 1]
        if length == 0:
            continue
        if off % 4:
            raise ObjectError(f"bad .BTF.ext: {kind} offset {off} is not 4-byte aligned")
        if off + length > len(body):
            raise ObjectError(
                f"bad .BTF.ext: {kind} ({off}+{length}) overruns the section"
                f" ({len(body)} bytes after the header)"
            )
        counts, ids = _parse_info(body[off:off + length], kind, btf, e)
        getattr(info, kind).update(counts)
        if kind == "core_relo":
            info.core_relo_type_ids = ids
    return info


def _parse_info(blob: bytes, kind: str, btf: Btf, e: str) -> tuple[dict[str, int], list[int]]:
    """Record counts per ELF section, and the second word of every record
    (the root type id, for CO-RE relocations)."""
    if len(blob) < 4:
        raise ObjectError(f"bad .BTF.ext: {kind} too short for its record size")
    rec_size = struct.unpack_from(e + "I", blob)[0]
    if rec_size < _MIN_RECORD[kind] or rec_size % 4:
        raise ObjectError(f"bad .BTF.ext: {kind} record size {rec_size} invalid")
    counts: dict[str, int] = {}
    ids: list[int] = []
    pos = 4
    while pos < len(blob):
        if pos + 8 > len(blob):
            raise ObjectError(f"bad .BTF.ext: {kind} section header truncated")
        name_off, num = struct.unpack_from(e + "II", blob, pos)
        pos += 8
        if num == 0:
            raise ObjectError(f"bad .BTF.ext: {kind} section has no records")
        if pos + num * rec_size > len(blob):
            raise ObjectError(
                f"bad .BTF.ext: {kind} count {num} overruns the section"
            )
        ids += [struct.unpack_from(e + "I", blob, pos + i * rec_size + 4)[0] for i in range(num)]
        pos += num * rec_size
        counts[_string(btf, name_off, kind)] = num
    return counts, ids


def _string(btf: Btf, off: int, kind: str) -> str:
    try:
        return btf.string(off)
    except (ValueError, IndexError):
        raise ObjectError(f"bad .BTF.ext: {kind} section name offset {off} out of range") from None
