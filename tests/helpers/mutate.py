"""A small mutation engine for fuzzing btfgen with hostile BPF objects and BTF.

:class:`Seed` wraps one input (an ELF ``.bpf.o`` or a raw BTF blob) and knows
where its ``.BTF`` section, BTF header, type records and string table are, so
mutations can aim at what the parser trusts: header fields that lie, type ids
pointing at themselves or out of range, kind/vlen garbage, reference loops,
counts and sizes that lie, names that are not strings.  Generic mutations (bit
flips, truncation, splices) work on the whole file too.

Everything is driven by a ``random.Random`` so a run is reproducible from its
seed::

    seed = Seed.from_bytes(data)
    rng = random.Random(1)
    data2, what = mutate(seed, rng)     # what: a short description
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from elftools.elf.elffile import ELFFile

BTF_MAGIC = 0xEB9F
HDR = 24
#: 32-bit words after ``struct btf_type``: fixed, and per vlen, by kind (0..19).
EXTRA_WORDS = (0, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0)
PER_VLEN = (0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3)
#: Kinds whose third word is a type id (the rest: a size, or unused).
REF_KINDS = frozenset({2, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18})
#: Values that make counts and offsets lie in interesting ways.
INTERESTING32 = (0, 1, 2, 3, 4, 7, 8, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF,
                 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x00FFFFFF, 0x01000000)


@dataclass
class Record:
    """One type record of the type section: word index and layout."""

    tid: int
    word: int  # index of its first word in the type section
    kind: int
    vlen: int
    nwords: int


@dataclass
class Seed:
    """One input and the positions (file offsets) of its BTF parts."""

    data: bytes
    #: File offset of the BTF blob (0 for raw BTF), its size, byte order.
    btf_off: int = 0
    btf_size: int = 0
    order: str = "<"
    #: File offsets of the type and string sections.
    types_off: int = 0
    types_len: int = 0
    str_off: int = 0
    str_len: int = 0
    records: list[Record] = field(default_factory=list)
    #: Other ELF sections worth aiming at: name -> (file offset, size).
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)
    is_elf: bool = False

    @classmethod
    def from_bytes(cls, data: bytes) -> Seed:
        """Index ``data`` (ELF or raw BTF); anything unparsable is left unindexed."""
        seed = cls(data=data)
        if data[:4] == b"\x7fELF":
            seed.is_elf = True
            try:
                elf = ELFFile(io.BytesIO(data))
                for sec in elf.iter_sections():
                    if sec["sh_type"] != "SHT_NOBITS" and sec["sh_size"]:
                        seed.sections[sec.name] = (int(sec["sh_offset"]), int(sec["sh_size"]))
            except Exception:  # an unparsable seed is still a seed
                return seed
            if ".BTF" not in seed.sections:
                return seed
            seed.btf_off, seed.btf_size = seed.sections[".BTF"]
        else:
            seed.btf_size = len(data)
        seed._index_btf()
        return seed

    def _index_btf(self) -> None:
        blob = self.data[self.btf_off:self.btf_off + self.btf_size]
        if len(blob) < HDR:
            return
        magic = int.from_bytes(blob[:2], "little")
        self.order = "<" if magic == BTF_MAGIC else ">"
        _, _, _, hdr_len, t_off, t_len, s_off, s_len = struct.unpack_from(
            self.order + "HBBIIIII", blob)
        self.types_off = self.btf_off + hdr_len + t_off
        self.types_len = t_len
        self.str_off = self.btf_off + hdr_len + s_off
        self.str_len = s_len
        if self.types_off + t_len > len(self.data):
            return
        words = struct.unpack_from(f"{self.order}{t_len // 4}I", self.data, self.types_off)
        i, tid = 0, 1
        while i + 3 <= len(words):
            info = words[i + 1]
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            if kind > 19:
                break
            n = 3 + EXTRA_WORDS[kind] + PER_VLEN[kind] * vlen
            self.records.append(Record(tid, i, kind, vlen, n))
            i += n
            tid += 1

    @property
    def type_count(self) -> int:
        return len(self.records) + 1


# -- primitive edits -----------------------------------------------------------


def put32(data: bytearray, off: int, value: int, order: str) -> None:
    if 0 <= off and off + 4 <= len(data):
        struct.pack_into(order + "I", data, off, value & 0xFFFFFFFF)


def get32(data: bytes | bytearray, off: int, order: str) -> int:
    if off < 0 or off + 4 > len(data):
        return 0
    return int(struct.unpack_from(order + "I", data, off)[0])


def _word_off(seed: Seed, rec: Record, k: int) -> int:
    return seed.types_off + 4 * (rec.word + k)


def _pick_id(seed: Seed, rng: random.Random, rec: Record) -> tuple[int, str]:
    """A type id that breaks something: itself, a neighbour, void, out of range."""
    n = seed.type_count
    choice = rng.randrange(8)
    if choice == 0:
        return rec.tid, "self"
    if choice == 1:
        return n, "one past the end"
    if choice == 2:
        return rng.choice((0xFFFFFFFF, 0x00FFFFFF, 0x80000000, n + rng.randrange(1, 1000))), "far"
    if choice == 3:
        return 0, "void"
    if choice == 4:
        return max(1, rec.tid - 1), "previous"
    return rng.randrange(n + 2), "random"


# -- mutations -------------------------------------------------------------------
# Each takes (seed, bytearray, rng), edits in place, returns a description.

Mutation = Callable[[Seed, bytearray, random.Random], str]


def m_bitflip(seed: Seed, d: bytearray, rng: random.Random) -> str:
    lo, hi = (seed.btf_off, seed.btf_off + seed.btf_size) if rng.random() < 0.7 and \
        seed.btf_size else (0, len(d))
    n = rng.choice((1, 1, 2, 4, 16))
    for _ in range(n):
        pos = rng.randrange(lo, hi)
        d[pos] ^= 1 << rng.randrange(8)
    return f"flip {n} bits in [{lo},{hi})"


def m_bytes(seed: Seed, d: bytearray, rng: random.Random) -> str:
    lo, hi = (seed.btf_off, seed.btf_off + seed.btf_size) if seed.btf_size else (0, len(d))
    pos = rng.randrange(lo, hi)
    n = rng.randrange(1, 9)
    fill = rng.choice((b"\xff", b"\x00", b"\x80", None))
    for k in range(pos, min(pos + n, len(d))):
        d[k] = rng.randrange(256) if fill is None else fill[0]
    return f"overwrite {n} bytes at {pos}"


def m_truncate(seed: Seed, d: bytearray, rng: random.Random) -> str:
    cut = rng.choice((rng.randrange(len(d)), seed.btf_off + rng.randrange(seed.btf_size + 1),
                      len(d) - rng.randrange(1, 65)))
    cut = max(0, min(cut, len(d) - 1))
    del d[cut:]
    return f"truncate to {cut}"


def m_header(seed: Seed, d: bytearray, rng: random.Random) -> str:
    if seed.btf_size < HDR:
        return m_bitflip(seed, d, rng)
    fld = rng.randrange(2, 8)  # skip magic; version, flags, then the u32s
    base = seed.btf_off
    if fld == 2:
        d[base + 2] = rng.choice((0, 2, 255))
        return "header version"
    if fld == 3:
        d[base + 3] = rng.choice((1, 0x80, 255))
        return "header flags"
    off = base + 4 + 4 * (fld - 3)
    old = get32(d, off, seed.order)
    new = rng.choice(INTERESTING32 + (old + 4, old - 4, old + 1, old * 2))
    put32(d, off, new, seed.order)
    return f"header field {('hdr_len', 'type_off', 'type_len', 'str_off', 'str_len')[fld - 3]}" \
        f" {old} -> {new & 0xFFFFFFFF}"


def _rec(seed: Seed, rng: random.Random, kinds: frozenset[int] | None = None) -> Record | None:
    recs = [r for r in seed.records if kinds is None or r.kind in kinds]
    return rng.choice(recs) if recs else None


def m_ref(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Point a type reference somewhere it must not go."""
    rec = _rec(seed, rng, frozenset(REF_KINDS | {3, 4, 5, 13, 15}))
    if rec is None:
        return m_bitflip(seed, d, rng)
    new, why = _pick_id(seed, rng, rec)
    if rec.kind in REF_KINDS:
        k = 2
    elif rec.kind == 3:
        k = rng.choice((3, 4))  # element, index
    elif rec.kind in (4, 5, 15) and rec.vlen:
        k = 3 + 3 * rng.randrange(rec.vlen) + (1 if rec.kind != 15 else 0)
    elif rec.kind == 13 and rec.vlen:
        k = 3 + 2 * rng.randrange(rec.vlen) + 1
    else:
        k = 2
    put32(d, _word_off(seed, rec, k), new, seed.order)
    return f"type {rec.tid} (kind {rec.kind}) word {k} -> {new} ({why})"


def m_loop(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Make a value-reference loop: A -> B -> A through typedefs/qualifiers/arrays,
    or a struct that contains itself (directly or via an array)."""
    refs = [r for r in seed.records if r.kind in (3, 8, 9, 10, 11, 18)]
    comps = [r for r in seed.records if r.kind in (4, 5) and r.vlen]
    if comps and (not refs or rng.random() < 0.5):
        s = rng.choice(comps)
        k = 3 + 3 * rng.randrange(s.vlen) + 1
        target = s.tid
        if refs and rng.random() < 0.5:  # through a typedef/array pointing back
            r = rng.choice(refs)
            put32(d, _word_off(seed, r, 3 if r.kind == 3 else 2), s.tid, seed.order)
            target = r.tid
        put32(d, _word_off(seed, s, k), target, seed.order)
        return f"struct {s.tid} contains itself via {target}"
    if len(refs) >= 2:
        a, b = rng.sample(refs, 2)
        put32(d, _word_off(seed, a, 3 if a.kind == 3 else 2), b.tid, seed.order)
        put32(d, _word_off(seed, b, 3 if b.kind == 3 else 2), a.tid, seed.order)
        return f"loop {a.tid} <-> {b.tid}"
    return m_ref(seed, d, rng)


def m_info(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Garbage in the info word: kind, vlen, kflag."""
    rec = _rec(seed, rng)
    if rec is None:
        return m_bitflip(seed, d, rng)
    off = _word_off(seed, rec, 1)
    info = get32(d, off, seed.order)
    what = rng.randrange(4)
    if what == 0:
        kind = rng.randrange(32)
        info = (info & ~(0x1F << 24)) | (kind << 24)
        desc = f"kind -> {kind}"
    elif what == 1:
        vlen = rng.choice((0, 1, rec.vlen + 1, max(0, rec.vlen - 1), 0xFFFF,
                           rng.randrange(0x10000)))
        info = (info & ~0xFFFF) | vlen
        desc = f"vlen -> {vlen}"
    elif what == 2:
        info ^= 0x80000000
        desc = "kflag flipped"
    else:
        info ^= 1 << rng.randrange(16, 31)
        desc = "unused info bit"
    put32(d, off, info, seed.order)
    return f"type {rec.tid}: {desc}"


def m_size(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Sizes, array counts, member offsets and bitfield sizes that lie."""
    rec = _rec(seed, rng, frozenset({1, 3, 4, 5, 6, 14, 15, 16, 19}))
    if rec is None:
        return m_bitflip(seed, d, rng)
    val = rng.choice(INTERESTING32)
    if rec.kind == 3:
        k = 5  # nelems
    elif rec.kind in (4, 5, 15) and rec.vlen and rng.random() < 0.6:
        k = 3 + 3 * rng.randrange(rec.vlen) + 2  # member offset / datasec offset or size
        if rec.kind == 15:
            k += rng.randrange(2) - 1
        elif rng.random() < 0.5:  # kflag style: bitfield size in the top byte
            val = (rng.randrange(256) << 24) | rng.randrange(1 << 16)
    elif rec.kind in (1, 14) and rng.random() < 0.5:
        k = 3  # int encoding word / var linkage
        val = rng.randrange(1 << 32) if rng.random() < 0.5 else val
    else:
        k = 2
    put32(d, _word_off(seed, rec, k), val, seed.order)
    return f"type {rec.tid} (kind {rec.kind}) word {k} -> {val:#x}"


def m_name(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """A name offset out of range, mid-string, at the last NUL, or at 0."""
    rec = _rec(seed, rng)
    if rec is None:
        return m_bitflip(seed, d, rng)
    k = 0
    if rec.kind in (4, 5, 6, 13, 19) and rec.vlen and rng.random() < 0.6:
        per = PER_VLEN[rec.kind]
        k = 3 + per * rng.randrange(rec.vlen)
    val = rng.choice((0, seed.str_len - 1, seed.str_len, seed.str_len + 7, 0xFFFFFFFF,
                      rng.randrange(max(1, seed.str_len))))
    put32(d, _word_off(seed, rec, k), val, seed.order)
    return f"type {rec.tid} name word {k} -> {val}"


def m_strings(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Hostile bytes in the string table (same length: offsets stay valid)."""
    if seed.str_len < 2:
        return m_bitflip(seed, d, rng)
    pos = seed.str_off + rng.randrange(seed.str_len)
    junk = rng.choice((b"\n", b"'", b'"', b"\\", b"\xff", b"\xc3", b"\x00", b" ", b".",
                       b"\x7f", b"\xed\xa0\x80", b'"""', b"'''", b"\\N{"))
    end = min(pos + len(junk), seed.str_off + seed.str_len - 1)
    d[pos:end] = junk[:end - pos]
    return f"strings[{pos - seed.str_off}] = {junk!r}"


def m_swap(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Swap the info words of two records (kinds and vlens that do not fit)."""
    if len(seed.records) < 2:
        return m_info(seed, d, rng)
    a, b = rng.sample(seed.records, 2)
    oa, ob = _word_off(seed, a, 1), _word_off(seed, b, 1)
    ia, ib = get32(d, oa, seed.order), get32(d, ob, seed.order)
    put32(d, oa, ib, seed.order)
    put32(d, ob, ia, seed.order)
    return f"swap info of {a.tid} and {b.tid}"


def m_section(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Damage another ELF section the reader uses (.BTF.ext, .maps, symtab ...)."""
    names = [n for n in seed.sections if n in (".BTF.ext", ".maps", ".symtab", ".strtab",
                                               ".rodata", ".data", ".bss", "license", "version")
             or n.startswith(".rel")]
    if not names:
        return m_bitflip(seed, d, rng)
    name = rng.choice(names)
    off, size = seed.sections[name]
    for _ in range(rng.choice((1, 2, 4))):
        pos = off + rng.randrange(size - 3 if size > 4 else size)
        if rng.random() < 0.5 and pos + 4 <= off + size:
            put32(d, pos, rng.choice(INTERESTING32), seed.order)
        else:
            d[pos] ^= 1 << rng.randrange(8)
    return f"damage section {name}"


def m_shdr(seed: Seed, d: bytearray, rng: random.Random) -> str:
    """Lie in the ELF header or a section header (offsets, sizes, links)."""
    if not seed.is_elf or len(d) < 64:
        return m_bitflip(seed, d, rng)
    e = "<" if d[5] == 1 else ">"
    shoff = struct.unpack_from(e + "Q", d, 40)[0]
    shnum = struct.unpack_from(e + "H", d, 60)[0]
    if rng.random() < 0.2 or not shnum or shoff + 64 * shnum > len(d):
        fld = rng.choice((40, 58, 60, 62))
        size = 8 if fld == 40 else 2
        val = rng.choice((0, 1, 0xFFFF, 0x7FFF, 64, len(d), 1 << 40))
        d[fld:fld + size] = (val & ((1 << (8 * size)) - 1)).to_bytes(size, "little" if e == "<"
                                                                     else "big")
        return f"ELF header byte {fld} -> {val}"
    idx = rng.randrange(shnum)
    base = shoff + 64 * idx
    fld, size = rng.choice(((0, 4), (4, 4), (24, 8), (32, 8), (40, 4), (44, 4), (56, 8)))
    val = rng.choice((0, 1, 0xFFFFFFFF, len(d), len(d) - 1, shnum, shnum + 5, 1 << 33))
    d[base + fld:base + fld + size] = (val & ((1 << (8 * size)) - 1)).to_bytes(
        size, "little" if e == "<" else "big")
    return f"section header {idx} field {fld} -> {val}"


#: Mutations and their weights: BTF-aware ones dominate.
MUTATIONS: tuple[tuple[Mutation, int], ...] = (
    (m_bitflip, 3), (m_bytes, 2), (m_truncate, 1), (m_header, 3), (m_ref, 6), (m_loop, 4),
    (m_info, 5), (m_size, 5), (m_name, 3), (m_strings, 3), (m_swap, 2), (m_section, 3),
    (m_shdr, 2),
)
_FUNCS = [m for m, _ in MUTATIONS]
_WEIGHTS = [w for _, w in MUTATIONS]


def mutate(seed: Seed, rng: random.Random, rounds: int | None = None) -> tuple[bytes, str]:
    """One mutant of ``seed``: 1-3 stacked mutations; returns (bytes, description)."""
    d = bytearray(seed.data)
    n = rounds if rounds is not None else rng.choice((1, 1, 1, 2, 3))
    what = []
    # Truncation last: the other mutations aim at offsets of the whole seed.
    for fn in sorted(rng.choices(_FUNCS, _WEIGHTS, k=n), key=lambda f: f is m_truncate):
        if not d:
            break
        what.append(fn(seed, d, rng))
    return bytes(d), "; ".join(what)


def replace_names(data: bytes, mapping: dict[bytes, bytes]) -> bytes:
    """Replace NUL-terminated placeholder names everywhere in an ELF image
    (``.BTF`` strings, ``.strtab`` ...) without moving anything.

    Each replacement must be no longer than its placeholder; it is padded with
    NULs, so the string ends early and every other string offset stays valid.
    """
    out = data
    for old, new in mapping.items():
        if b"\0" in new or len(new) > len(old):
            raise ValueError(f"replacement for {old!r} must be NUL-free and at most "
                             f"{len(old)} bytes")
        if old + b"\0" not in out:
            raise ValueError(f"placeholder {old!r} not found")
        out = out.replace(old + b"\0", new + b"\0" * (len(old) - len(new) + 1))
    return out
