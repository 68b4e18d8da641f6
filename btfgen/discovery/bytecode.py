"""Find what a BPF object sends to its perf and ring buffers, from its bytecode.

Every program is decoded (instructions of its ELF section, ``.rel<section>``
telling which map or global an ``ld_imm64`` loads, and which function a
BPF-to-BPF call enters) and run through a small abstract interpretation: per
register a value that is a map address, a pointer into the stack (frame
function and offset), into a map value (from ``bpf_map_lookup_elem``), into a
global variable, a ring buffer reservation, or a scalar with an unsigned range
(narrowed by the range checks the verifier also needs).  Spills of 8-byte
registers to the stack are tracked.  At each call of
``bpf_perf_event_output`` (25), ``bpf_ringbuf_output`` (130) and
``bpf_ringbuf_reserve`` (131) the map, the size and where the data comes from
are recorded as an :class:`EmitSite`.

It is an analysis for naming types, not a verifier: whatever it cannot follow
becomes "unknown", and nothing here raises on strange code.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from btfgen.elf.image import ElfImage, ElfSymbol, load_elf
from btfgen.elf.model import BpfObject

HELPER_MAP_LOOKUP = 1
HELPER_PERF_EVENT_OUTPUT = 25
HELPER_RINGBUF_OUTPUT = 130
HELPER_RINGBUF_RESERVE = 131
HELPER_MAP_LOOKUP_PERCPU = 195
HELPER_NAMES = {
    HELPER_PERF_EVENT_OUTPUT: "bpf_perf_event_output",
    HELPER_RINGBUF_OUTPUT: "bpf_ringbuf_output",
    HELPER_RINGBUF_RESERVE: "bpf_ringbuf_reserve",
}
#: helper id -> (register holding the map, register holding the data or 0, register of the size)
_EMIT_ARGS = {
    HELPER_PERF_EVENT_OUTPUT: (2, 4, 5),
    HELPER_RINGBUF_OUTPUT: (1, 2, 3),
    HELPER_RINGBUF_RESERVE: (1, 0, 2),
}

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
_MAX_CALL_DEPTH = 8
_MAX_VISITS = 24  # per instruction, before ranges are widened to "unknown"
_MAX_STEPS = 200_000  # per object


# -- abstract values -------------------------------------------------------------------

@dataclass(frozen=True)
class Scalar:
    """A number in ``[lo, hi]`` (unsigned 64-bit)."""

    lo: int = 0
    hi: int = U64

    @property
    def const(self) -> int | None:
        return self.lo if self.lo == self.hi else None


@dataclass(frozen=True)
class MapAddr:
    """The address of map ``name`` (``r1 = &events ll``)."""

    name: str


@dataclass(frozen=True)
class StackPtr:
    """``r10 + off`` of function ``frame``'s stack."""

    frame: str
    off: int


@dataclass(frozen=True)
class MapValuePtr:
    """``off`` bytes into a value of map ``name`` (or NULL)."""

    name: str
    off: int


@dataclass(frozen=True)
class GlobalPtr:
    """``off`` bytes into data section ``section`` (a global variable)."""

    section: str
    off: int


@dataclass(frozen=True)
class RingbufPtr:
    """A ``bpf_ringbuf_reserve`` reservation of ``size`` bytes in map ``name``."""

    name: str
    size: Scalar
    off: int = 0


Value = Scalar | MapAddr | StackPtr | MapValuePtr | GlobalPtr | RingbufPtr
UNKNOWN = Scalar()


@dataclass(frozen=True)
class EmitSite:
    """One call of an output helper on a map."""

    map_name: str
    helper: int
    #: The function whose code holds the call, and the instruction index in its section.
    function: str
    section: str
    insn: int
    #: Size argument (constant when ``lo == hi``; ``hi`` is U64 when unbounded).
    size: Scalar
    #: Where the data pointer points (None for a reservation: the ring buffer itself).
    data: Value | None

    @property
    def helper_name(self) -> str:
        return HELPER_NAMES.get(self.helper, f"helper {self.helper}")


@dataclass
class _Insn:
    code: int
    dst: int
    src: int
    off: int
    imm: int
    #: For ld_imm64: the full 64-bit immediate; for relocated ones the target.
    imm64: int = 0
    target: Value | None = None
    #: For BPF-to-BPF calls: (section, instruction index) of the callee.
    callee: tuple[str, int] | None = None


@dataclass
class _Section:
    name: str
    insns: dict[int, _Insn] = field(default_factory=dict)
    #: instruction index -> function symbol name
    functions: dict[int, str] = field(default_factory=dict)


def _decode(data: bytes, order: str) -> dict[int, _Insn]:
    e = "<" if order == "little" else ">"
    out: dict[int, _Insn] = {}
    n = len(data) // 8
    i = 0
    while i < n:
        code, regs, off, imm = struct.unpack_from(e + "BBhi", data, i * 8)
        dst, src = (regs & 0xF, regs >> 4) if order == "little" else (regs >> 4, regs & 0xF)
        ins = _Insn(code, dst, src, off, imm)
        out[i] = ins
        if code == 0x18 and i + 1 < n:  # ld_imm64 spans two slots
            hi = struct.unpack_from(e + "i", data, (i + 1) * 8 + 4)[0]
            ins.imm64 = ((hi & U32) << 32) | (imm & U32)
            i += 2
            continue
        i += 1
    return out


def _relocations(elf: ElfImage, section: str) -> Iterator[tuple[int, ElfSymbol]]:
    rel = elf.section(".rel" + section)
    if rel is None or rel.type != "SHT_REL":
        return
    e = "<" if elf.byteorder == "little" else ">"
    for pos in range(0, len(rel.data) - 15, 16):
        r_offset, r_info = struct.unpack_from(e + "QQ", rel.data, pos)
        sym = r_info >> 32
        if 0 <= sym < len(elf.symbols):
            yield r_offset, elf.symbols[sym]


def _load_sections(obj: BpfObject, elf: ElfImage) -> dict[str, _Section]:
    map_sections = {".maps", "maps"}
    data_sections = {s.name for s in obj.sections}
    by_index = {s.index: s for s in elf.sections}
    out: dict[str, _Section] = {}
    for sec in elf.sections:
        if not sec.executable or not sec.data:
            continue
        s = _Section(sec.name, _decode(sec.data, elf.byteorder))
        for sym in elf.symbols_in(sec.index):
            if sym.type == "STT_FUNC":
                s.functions[sym.value // 8] = sym.name
        out[sec.name] = s
    for s in out.values():
        for r_offset, sym in _relocations(elf, s.name):
            ins = s.insns.get(r_offset // 8)
            target_sec = by_index.get(sym.shndx)
            if ins is None or target_sec is None:
                continue
            if ins.code == 0x85:  # call: BPF-to-BPF into another function
                if target_sec.name in out:
                    ins.callee = (target_sec.name, sym.value // 8 + ins.imm + 1)
            elif ins.code == 0x18:
                if target_sec.name in map_sections:
                    ins.target = MapAddr(sym.name)
                elif target_sec.name in data_sections:
                    addend = ins.imm if sym.type == "STT_SECTION" else 0
                    ins.target = GlobalPtr(target_sec.name, sym.value + addend)
    for s in out.values():
        for idx, ins in s.insns.items():
            if ins.code == 0x85 and ins.src == 1 and ins.callee is None:
                ins.callee = (s.name, idx + ins.imm + 1)
    return out


# -- the interpretation ----------------------------------------------------------------

@dataclass
class _State:
    regs: list[Value]
    stack: dict[tuple[str, int], Value]

    def copy(self) -> _State:
        return _State(list(self.regs), dict(self.stack))


def _join_value(a: Value, b: Value) -> Value:
    if a == b:
        return a
    if isinstance(a, Scalar) and isinstance(b, Scalar):
        return Scalar(min(a.lo, b.lo), max(a.hi, b.hi))
    if isinstance(a, RingbufPtr) and isinstance(b, RingbufPtr) and a.name == b.name \
            and a.off == b.off:
        return RingbufPtr(a.name, _join_value(a.size, b.size), a.off)  # type: ignore[arg-type]
    return UNKNOWN


def _join(a: _State, b: _State) -> _State:
    regs = [_join_value(x, y) for x, y in zip(a.regs, b.regs, strict=True)]
    stack = {k: _join_value(v, b.stack[k]) for k, v in a.stack.items() if k in b.stack}
    return _State(regs, stack)


def _widen(old: _State, new: _State) -> _State:
    regs = [n if n == o else UNKNOWN for o, n in zip(old.regs, new.regs, strict=True)]
    stack = {k: v for k, v in new.stack.items() if old.stack.get(k) == v}
    return _State(regs, stack)


def _alu(op: int, a: Value, b: Value, is64: bool) -> Value:
    if op == 0xB0:  # mov
        if is64:
            return b
        return _trunc32(b) if isinstance(b, Scalar) else UNKNOWN
    if not isinstance(b, Scalar):
        return UNKNOWN
    k = b.const
    if not isinstance(a, Scalar):
        if is64 and k is not None and op in (0x00, 0x10):  # pointer +/- constant
            delta = _signed(k) if op == 0x00 else -_signed(k)
            if isinstance(a, StackPtr):
                return StackPtr(a.frame, a.off + delta)
            if isinstance(a, MapValuePtr):
                return MapValuePtr(a.name, a.off + delta)
            if isinstance(a, GlobalPtr):
                return GlobalPtr(a.section, a.off + delta)
            if isinstance(a, RingbufPtr):
                return RingbufPtr(a.name, a.size, a.off + delta)
        return UNKNOWN
    r = _scalar_op(op, a, b, k)
    if not is64:
        r = _trunc32(r)
    return r


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _trunc32(v: Scalar) -> Scalar:
    return v if v.hi <= U32 else Scalar(0, U32)


def _scalar_op(op: int, a: Scalar, b: Scalar, k: int | None) -> Scalar:
    if op == 0x00:  # add
        lo, hi = a.lo + b.lo, a.hi + b.hi
        return Scalar(lo, hi) if hi <= U64 else UNKNOWN
    if op == 0x10:  # sub
        lo, hi = a.lo - b.hi, a.hi - b.lo
        if lo >= 0:
            return Scalar(lo, hi)
        if a.const is not None and b.const is not None:
            return Scalar(lo & U64, lo & U64)
        return UNKNOWN
    if op == 0x20 and k is not None:  # mul
        hi = a.hi * k
        return Scalar(a.lo * k, hi) if hi <= U64 else UNKNOWN
    if op == 0x50:  # and
        return Scalar(0, min(a.hi, b.hi)) if a.const is None or k is None \
            else Scalar(a.lo & k, a.lo & k)
    if op == 0x40 and a.const is not None and k is not None:  # or
        return Scalar(a.lo | k, a.lo | k)
    if op == 0x60 and k is not None and k < 64:  # lsh
        hi = a.hi << k
        return Scalar(a.lo << k, hi) if hi <= U64 else UNKNOWN
    if op == 0x70 and k is not None and k < 64:  # rsh
        return Scalar(a.lo >> k, a.hi >> k)
    if op == 0x30 and k:  # div
        return Scalar(a.lo // k, a.hi // k)
    if op == 0x90 and k:  # mod
        return Scalar(0, min(a.hi, k - 1))
    return UNKNOWN


#: ``K op x`` is ``x MIRROR[op] K``.
_MIRROR = {0x10: 0x10, 0x50: 0x50, 0x20: 0xA0, 0xA0: 0x20, 0x30: 0xB0, 0xB0: 0x30,
           0x60: 0xC0, 0xC0: 0x60, 0x70: 0xD0, 0xD0: 0x70}


def _refine(v: Value, op: int, k: int, taken: bool) -> Value:
    """Narrow scalar ``v`` knowing that ``v OP k`` is ``taken`` (unsigned compares)."""
    if not isinstance(v, Scalar):
        return v
    # signed compares act like unsigned ones while both sides are non-negative
    if op in (0x60, 0x70, 0xC0, 0xD0):
        if v.hi >= 1 << 63 or k >= 1 << 63:
            return v
        op = {0x60: 0x20, 0x70: 0x30, 0xC0: 0xA0, 0xD0: 0xB0}[op]
    lo, hi = v.lo, v.hi
    if not taken:  # negate
        neg = {0x10: 0x50, 0x50: 0x10, 0x20: 0xB0, 0xB0: 0x20, 0x30: 0xA0, 0xA0: 0x30}
        if op not in neg:
            return v
        op = neg[op]
    if op == 0x10:
        lo = hi = k
    elif op == 0x20:
        lo = max(lo, k + 1)
    elif op == 0x30:
        lo = max(lo, k)
    elif op == 0xA0:
        hi = min(hi, k - 1)
    elif op == 0xB0:
        hi = min(hi, k)
    elif op == 0x50:
        if lo == hi == k:
            return v
    if lo > hi:
        return v  # contradiction: an unreachable branch; keep the value
    return Scalar(lo, hi)


class _Analyzer:
    def __init__(self, sections: dict[str, _Section]) -> None:
        self.sections = sections
        self.sites: dict[tuple[str, int, str], EmitSite] = {}
        #: frame -> lowest r10-relative offset the function uses (its stack depth)
        self.frame_low: dict[str, int] = {}
        self.steps = 0

    def _touch(self, v: Value, extra: int = 0) -> None:
        if isinstance(v, StackPtr) and v.off + extra < self.frame_low.get(v.frame, 0):
            self.frame_low[v.frame] = v.off + extra

    def run_function(self, sec_name: str, start: int, args: list[Value], depth: int) -> None:
        sec = self.sections[sec_name]
        frame = sec.functions.get(start, f"{sec_name}+{start}")
        regs: list[Value] = [UNKNOWN] * 11
        regs[1:6] = args
        regs[10] = StackPtr(frame, 0)
        states: dict[int, _State] = {start: _State(regs, {})}
        visits: dict[int, int] = {}
        work = [start]
        while work:
            self.steps += 1
            if self.steps > _MAX_STEPS:
                return
            pc = work.pop()
            st = states[pc].copy()
            ins = sec.insns.get(pc)
            if ins is None:
                continue
            for nxt, new in self._step(sec, frame, pc, ins, st, depth):
                if nxt not in sec.insns:
                    continue
                old = states.get(nxt)
                if old is None:
                    states[nxt] = new
                    work.append(nxt)
                    continue
                joined = _join(old, new)
                visits[nxt] = visits.get(nxt, 0) + 1
                if visits[nxt] > _MAX_VISITS:
                    joined = _widen(old, joined)
                if joined != old:
                    states[nxt] = joined
                    work.append(nxt)

    def _step(self, sec: _Section, frame: str, pc: int, ins: _Insn, st: _State,
              depth: int) -> list[tuple[int, _State]]:
        cls = ins.code & 0x07
        regs = st.regs
        if ins.code == 0x18:
            if 0 <= ins.dst <= 9:
                regs[ins.dst] = ins.target if ins.target is not None else \
                    Scalar(ins.imm64, ins.imm64) if ins.src == 0 else UNKNOWN
            return [(pc + 2, st)]
        if cls in (0x04, 0x07):  # ALU, ALU64
            op = ins.code & 0xF0
            if ins.dst > 9:
                return [(pc + 1, st)]
            if op in (0x80, 0xD0) or (ins.off and op in (0x30, 0x90, 0xB0)):
                regs[ins.dst] = UNKNOWN  # neg, byte swap; cpu v4 signed div/mod, movsx
            else:
                b: Value = Scalar(ins.imm & U64, ins.imm & U64)
                if ins.code & 0x08:
                    b = regs[ins.src] if ins.src <= 10 else UNKNOWN
                if not ins.code & 0x08 and ins.imm < 0 and cls == 0x04:
                    b = Scalar(ins.imm & U32, ins.imm & U32)
                regs[ins.dst] = _alu(op, regs[ins.dst], b, cls == 0x07)
                self._touch(regs[ins.dst])
            return [(pc + 1, st)]
        if cls == 0x01:  # LDX
            if ins.dst > 9:
                return [(pc + 1, st)]
            base = regs[ins.src] if ins.src <= 10 else UNKNOWN
            self._touch(base, ins.off)
            val: Value = UNKNOWN
            size = ins.code & 0x18
            if isinstance(base, StackPtr) and size == 0x18:
                val = st.stack.get((base.frame, base.off + ins.off), UNKNOWN)
            elif size != 0x18 and ins.code & 0xE0 == 0x60:  # not sign-extending (MEMSX)
                val = Scalar(0, (1 << (8 << {0x00: 2, 0x08: 1, 0x10: 0}.get(size, 3))) - 1)
            regs[ins.dst] = val
            return [(pc + 1, st)]
        if cls in (0x02, 0x03):  # ST, STX
            base = regs[ins.dst] if ins.dst <= 10 else UNKNOWN
            self._touch(base, ins.off)
            if isinstance(base, StackPtr):
                nbytes = {0x00: 4, 0x08: 2, 0x10: 1, 0x18: 8}[ins.code & 0x18]
                lo = base.off + ins.off
                for key in [k for k in st.stack if k[0] == base.frame
                            and k[1] < lo + nbytes and lo < k[1] + 8]:
                    del st.stack[key]
                if nbytes == 8 and ins.code & 0xE0 == 0x60:
                    if cls == 0x03:
                        st.stack[(base.frame, lo)] = regs[ins.src] if ins.src <= 10 else UNKNOWN
                    else:
                        st.stack[(base.frame, lo)] = Scalar(ins.imm & U64, ins.imm & U64)
            return [(pc + 1, st)]
        if cls in (0x05, 0x06):
            return self._jump(sec, frame, pc, ins, st, depth)
        return [(pc + 1, st)]

    def _jump(self, sec: _Section, frame: str, pc: int, ins: _Insn, st: _State,
              depth: int) -> list[tuple[int, _State]]:
        op = ins.code & 0xF0
        regs = st.regs
        if op == 0x90:  # exit
            return []
        if op == 0x80:  # call
            if ins.callee is not None or ins.src == 1:
                if ins.callee is not None and depth < _MAX_CALL_DEPTH \
                        and ins.callee[0] in self.sections:
                    self.run_function(ins.callee[0], ins.callee[1], regs[1:6], depth + 1)
                regs[0] = UNKNOWN
            else:
                self._helper(frame, sec.name, pc, ins.imm, regs)
            for r in range(1, 6):
                regs[r] = UNKNOWN
            return [(pc + 1, st)]
        if op == 0x00:  # ja
            target = pc + 1 + (ins.imm if ins.code == 0x06 else ins.off)
            return [(target, st)]
        target = pc + 1 + ins.off
        if ins.code & 0x08:
            k_val = regs[ins.src] if ins.src <= 10 else UNKNOWN
            k = k_val.const if isinstance(k_val, Scalar) else None
        else:
            k = ins.imm & (U64 if ins.code & 0x07 == 0x05 else U32)
        reg = ins.dst
        if k is None and ins.code & 0x08 and ins.src <= 9:
            # ``if K op rX``: refine rX with the mirrored comparison
            d = regs[ins.dst] if ins.dst <= 10 else UNKNOWN
            k = d.const if isinstance(d, Scalar) else None
            op = _MIRROR.get(op, 0x40)
            reg = ins.src
        if k is None or reg > 9 or op == 0x40:  # jset and unknown operands: no refinement
            return [(target, st), (pc + 1, st.copy())]
        v = regs[reg]
        if ins.code & 0x07 == 0x06 and isinstance(v, Scalar) and v.hi > U32:
            return [(target, st), (pc + 1, st.copy())]
        taken, fall = st, st.copy()
        taken.regs[reg] = _refine(v, op, k, True)
        fall.regs[reg] = _refine(v, op, k, False)
        return [(target, taken), (pc + 1, fall)]

    def _helper(self, frame: str, section: str, pc: int, helper: int, regs: list[Value]) -> None:
        r0: Value = UNKNOWN
        if helper in (HELPER_MAP_LOOKUP, HELPER_MAP_LOOKUP_PERCPU) and isinstance(regs[1], MapAddr):
            r0 = MapValuePtr(regs[1].name, 0)
        if helper in _EMIT_ARGS:
            map_reg, data_reg, size_reg = _EMIT_ARGS[helper]
            m = regs[map_reg]
            size = regs[size_reg]
            if not isinstance(size, Scalar):
                size = UNKNOWN
            if isinstance(m, MapAddr):
                data = regs[data_reg] if data_reg else None
                site = EmitSite(m.name, helper, frame, section, pc, size, data)
                key = (section, pc, repr(site))
                self.sites.setdefault(key, site)
                if helper == HELPER_RINGBUF_RESERVE:
                    r0 = RingbufPtr(m.name, size)
        regs[0] = r0


def entry_points(sections: dict[str, _Section]) -> Iterator[tuple[str, int]]:
    """(section, instruction index) of every program: functions outside ``.text``."""
    for s in sections.values():
        if s.name == ".text":
            continue
        for idx in sorted(s.functions):
            yield s.name, idx


@dataclass
class BytecodeFacts:
    """What the bytecode tells about output helpers."""

    sites: list[EmitSite]
    #: function -> stack depth in bytes (8-aligned), to place DWARF frame offsets
    stack_depth: dict[str, int]


def analyze(obj: BpfObject, elf: ElfImage | None = None) -> BytecodeFacts:
    """Run every program of ``obj``; see the module docstring."""
    if not obj.is_elf or not obj.data:
        return BytecodeFacts([], {})
    if elf is None:
        elf = load_elf(obj.data)
    sections = _load_sections(obj, elf)
    an = _Analyzer(sections)
    for sec_name, start in entry_points(sections):
        an.run_function(sec_name, start, [Scalar(), UNKNOWN, UNKNOWN, UNKNOWN, UNKNOWN], 0)
    sites = sorted(an.sites.values(), key=lambda s: (s.section, s.insn, repr(s)))
    depth = {f: (-low + 7) // 8 * 8 for f, low in an.frame_low.items()}
    return BytecodeFacts(sites, depth)

