"""The record type of every perf event array and ring buffer map.

Sources, strongest first (the first that answers wins, except that the
bytecode and DWARF work together, see below):

``--event``
    ``--event MAP=CTYPE`` names the type; it is looked up in the object's BTF,
    then its DWARF, then the ``--header`` file.
``map BTF``
    ``__type(value, struct event)`` on the map (cilium/ebpf style): a
    struct/union value type (a perf array's usual ``u32`` value is the fd).
``annotation``
    ``BTFGEN_RECORD(map, type)`` from ``btfgen.bpf.h``: a global
    ``__btfgen_record__<map>`` of type ``type *`` in section ``.btfgen``, which
    libbpf skips; also ``btf_decl_tag("btfgen:record=CTYPE")`` on the map.
``bytecode`` / ``dwarf``
    :mod:`btfgen.discovery.bytecode` finds every output-helper call on the map with the
    size and where the data comes from.  A map value (its BTF value type), a
    global variable (its type) or, with DWARF, the stack local or the pointer
    local at that place give the type directly ("dwarf" when DWARF named it).
    Otherwise the size is matched against the object's own record types: BTF
    structs that are not kernel types, then structs the object's own source
    defines in DWARF.  Every call site must agree.
``header``
    Structs the ``--header`` file itself defines, matched by size, when
    nothing else had a candidate.

Two candidates that fit equally are reported as ambiguous (the map then
delivers bytes), never guessed.  Types from DWARF or the header are appended
to a split BTF on top of the object's (:attr:`EventTypes.btf`), so the
generator handles them like BTF types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from btfgen.btf_c import c_type_name, find_c_type
from btfgen.btf_extend import BtfExtender
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
    Int,
    Kind,
    Ptr,
    Struct,
    Typedef,
    Union,
    Var,
)
from btfgen.discovery.bytecode import (
    U64,
    BytecodeFacts,
    EmitSite,
    GlobalPtr,
    MapValuePtr,
    RingbufPtr,
    StackPtr,
    analyze,
)
from btfgen.discovery.dwarf import (
    DWARF_ERRORS,
    Die,
    DwarfConverter,
    DwarfTypes,
    c_name,
    die_size,
    type_of,
)
from btfgen.discovery.header import HeaderTypes
from btfgen.elf.model import BpfObject, MapDef
from btfgen.errors import BtfgenError, ObjectError
from btfgen.runtime.map_types import PERF_EVENT_ARRAY, RINGBUF

RECORD_MAP_TYPES = (PERF_EVENT_ARRAY, RINGBUF)
#: Prefix of the annotation variables ``BTFGEN_RECORD`` defines.
ANNOTATION_PREFIX = "__btfgen_record__"
#: Decl tag form of the annotation, on the map variable.
RECORD_TAG = "btfgen:record="
#: Types of libbpf's own BPF headers (usdt.bpf.h ...): never a tool's records.
_LIBBPF_INTERNAL = ("__bpf_usdt",)


class EventTypeError(BtfgenError):
    """A bad ``--event`` (unknown map or type) or ``--header`` (one-line message)."""


@dataclass
class Candidate:
    """A type that could be a map's records."""

    name: str
    size: int
    source: str
    #: Why it is a candidate ("value of map 'heap'", "local 'e' of handle", "size match").
    why: str
    #: Gives the type id (converting DWARF/header types only when chosen).
    make: Callable[[], int] = field(repr=False, compare=False)

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.size)


@dataclass
class MapRecord:
    """What is known about one perf/ring map's records."""

    map_name: str
    map_type: int
    #: The record type in :attr:`EventTypes.btf` (0: unknown or ambiguous, records are bytes).
    type_id: int = 0
    #: "--event", "map BTF", "annotation", "bytecode", "dwarf" or "header"; "" when unresolved.
    source: str = ""
    #: How the source found it, for ``btfgen info``.
    detail: str = ""
    #: When ambiguous: the types that fit equally.
    candidates: list[Candidate] = field(default_factory=list)
    sites: list[EmitSite] = field(default_factory=list)
    #: A one-line message for people when unresolved or ambiguous ("" otherwise).
    message: str = ""

    @property
    def resolved(self) -> bool:
        return self.type_id != 0

    @property
    def size_range(self) -> tuple[int, int] | None:
        """(smallest, largest) record size the bytecode sends, when every call's size
        is bounded; a smallest size below the type's size means variable-length
        records (a struct and the used part of a trailing array), which arrive
        shorter than the type and must be zero-padded to decode."""
        if not self.sites or any(s.size.hi in (0, U64) for s in self.sites):
            return None
        return min(s.size.lo for s in self.sites), max(s.size.hi for s in self.sites)

    @property
    def ambiguous(self) -> bool:
        return not self.type_id and len(self.candidates) > 1


@dataclass
class EventTypes:
    """The result of :func:`resolve_event_types`."""

    #: The object's BTF, or a split BTF on top of it holding DWARF/header types.
    btf: Btf
    #: map name -> its record information, for every PERF_EVENT_ARRAY/RINGBUF map.
    maps: dict[str, MapRecord] = field(default_factory=dict)

    def record_type_id(self, map_name: str) -> int:
        """The record type id of ``map_name`` in :attr:`btf` (0: bytes)."""
        r = self.maps.get(map_name)
        return r.type_id if r is not None else 0

    def messages(self) -> list[str]:
        """One line per unresolved or ambiguous map."""
        return [r.message for r in self.maps.values() if r.message]


def unresolved_message(m: MapDef) -> str:
    """The line printed when nothing types map ``m``."""
    return (f"map '{m.name}' ({m.map_type_name}): record type not found, records are bytes;"
            f" type it with --event {m.name}=CTYPE (plus --header FILE.h for a stripped"
            f" object) or BTFGEN_RECORD({m.name}, CTYPE) from <btfgen.bpf.h>")


def parse_event_args(specs: list[str]) -> dict[str, str]:
    """``["events=struct event"]`` -> ``{"events": "struct event"}``."""
    out: dict[str, str] = {}
    for spec in specs:
        name, sep, ctype = spec.partition("=")
        if not sep or not name.strip() or not ctype.strip():
            raise EventTypeError(
                f"--event {spec!r}: expected MAP=CTYPE, e.g. events='struct event'")
        out[name.strip()] = " ".join(ctype.split())
    return out


# -- BTF helpers ---------------------------------------------------------------------

def _is_record(btf: Btf, type_id: int) -> bool:
    try:
        return isinstance(btf.skip_modifiers(type_id), (Struct, Union))
    except BtfgenError:
        return False


def _is_scalar(btf: Btf, type_id: int) -> bool:
    """An integer, enum or float (through typedefs and qualifiers): a record type too."""
    try:
        return isinstance(btf.skip_modifiers(type_id), (Int, Enum, Enum64, Float))
    except BtfgenError:
        return False


def _size(btf: Btf, type_id: int) -> int:
    try:
        return btf.size_of(type_id)
    except BtfgenError:
        return -1


def _refs(t: BtfType) -> list[int]:
    if isinstance(t, (Struct, Union)):
        return [m.type_id for m in t.members]
    if isinstance(t, FuncProto):
        return [t.return_type_id, *(p.type_id for p in t.params)]
    if isinstance(t, Datasec):
        return [v.type_id for v in t.vars]
    if isinstance(t, Array):
        return [t.type_id]
    tid = getattr(t, "type_id", 0)
    return [tid] if isinstance(tid, int) else []


def _reachable(btf: Btf, roots: list[int], *, by_value_only: bool = False) -> set[int]:
    seen: set[int] = set()
    work = [r for r in roots if r]
    while work:
        tid = work.pop()
        if tid in seen:
            continue
        seen.add(tid)
        try:
            t = btf.type(tid)
        except BtfgenError:
            continue
        if by_value_only and isinstance(t, (Ptr, FuncProto)):
            continue
        work.extend(r for r in _refs(t) if r and r not in seen)
    return seen


def core_relo_type_ids(obj: BpfObject) -> list[int]:
    """The root types of the object's CO-RE relocations (kernel types)."""
    info = obj.btf_ext_info
    return list(info.core_relo_type_ids) if info is not None else []


def btf_record_pool(obj: BpfObject) -> list[BtfType]:
    """Named structs/unions of the object's BTF that may be its own records.

    Kernel types (reached from CO-RE relocations or program context
    arguments) and the anonymous structs of map definitions are left out;
    what map keys/values and globals hold by value is always in.
    """
    btf = obj.btf
    kernel_roots = core_relo_type_ids(obj)
    progs = {p.name for p in obj.programs}
    for t in btf.types:
        if isinstance(t, Func) and t.name in progs:
            kernel_roots.append(t.type_id)
    kernel = _reachable(btf, kernel_roots)
    user_roots: list[int] = []
    for m in obj.maps:
        user_roots += [m.key_type_id, m.value_type_id]
    for sec in obj.sections:
        user_roots += [v.type_id for v in sec.variables]
    user = _reachable(btf, user_roots, by_value_only=True)
    pool: list[BtfType] = []
    for t in btf.types:
        if not isinstance(t, (Struct, Union, Typedef)) or not t.name \
                or t.name.startswith(_LIBBPF_INTERNAL):
            continue
        if isinstance(t, Typedef) and not _is_record(btf, t.type_id):
            continue
        if t.id in kernel and t.id not in user:
            continue
        if isinstance(t, Typedef):
            inner = btf.skip_modifiers(t.type_id)
            if inner.name:  # ``typedef struct x x_t``: the struct itself is in the pool
                continue
        pool.append(t)
    return pool


# -- resolution -------------------------------------------------------------------------

class _Resolver:
    def __init__(self, obj: BpfObject, header: str | None) -> None:
        self.obj = obj
        self.btf = obj.btf
        self.ext = BtfExtender(obj.btf)
        self.header_path = header
        self._header: HeaderTypes | None = None
        self._dwarf: DwarfTypes | None = None
        self._conv: DwarfConverter | None = None
        self._facts: BytecodeFacts | None = None
        self._pool: list[BtfType] | None = None

    # lazily computed inputs
    @property
    def dwarf(self) -> DwarfTypes:
        if self._dwarf is None:
            self._dwarf = DwarfTypes(self.obj.data if self.obj.is_elf else b"")
        return self._dwarf

    def dwarf_type(self, die: Die) -> int:
        if self._conv is None:
            self._conv = DwarfConverter(self.ext)
        try:
            return self._conv.convert(die)
        except DWARF_ERRORS as e:
            raise ObjectError(f"unusable DWARF ({type(e).__name__})") from None

    @property
    def header(self) -> HeaderTypes | None:
        if self._header is None and self.header_path:
            self._header = HeaderTypes(self.header_path, self.ext)
        return self._header

    @property
    def facts(self) -> BytecodeFacts:
        if self._facts is None:
            self._facts = analyze(self.obj, self.obj.elf)  # empty for raw BTF
        return self._facts

    @property
    def pool(self) -> list[BtfType]:
        if self._pool is None:
            self._pool = btf_record_pool(self.obj)
        return self._pool

    # sources
    def from_event(self, m: MapDef, spec: str) -> tuple[int, str]:
        t = find_c_type(self.btf, spec)
        if t is not None:
            return t.id, "in the object's BTF"
        die = self.dwarf.named.get(spec)
        if die is not None:
            return self.dwarf_type(die), "from DWARF"
        hdr = self.header
        if hdr is not None:
            tid = hdr.lookup(spec)
            if tid:
                return tid, f"from {self.header_path}"
        where = "BTF or DWARF" + (" or --header" if self.header_path else
                                 " (a stripped object needs --header FILE.h)")
        raise EventTypeError(f"--event {m.name}={spec}: no type '{spec}' in the object's {where}")

    def from_map_btf(self, m: MapDef) -> int:
        if m.value_type_id and _is_record(self.btf, m.value_type_id):
            return m.value_type_id
        # A ring buffer's ``__type(value, __u32)`` says what it carries; a perf
        # event array's scalar value is the perf event fd, not its records.
        if m.value_type_id and m.map_type == RINGBUF and _is_scalar(self.btf, m.value_type_id):
            return m.value_type_id
        return 0

    def from_annotation(self, m: MapDef) -> tuple[int, str]:
        for v in self.btf.find(ANNOTATION_PREFIX + m.name, Kind.VAR):
            assert isinstance(v, Var)
            p = self.btf.skip_modifiers(v.type_id)
            if isinstance(p, Ptr) and p.type_id:
                return p.type_id, f"BTFGEN_RECORD({m.name}, ...)"
        map_vars = {t.id for t in self.btf.find(m.name, Kind.VAR)}
        for t in self.btf.types:
            if isinstance(t, DeclTag) and t.type_id in map_vars and t.component_idx == -1 \
                    and t.name.startswith(RECORD_TAG):
                spec = t.name[len(RECORD_TAG):].strip()
                found = find_c_type(self.btf, spec)
                if found is not None:
                    return found.id, f'btf_decl_tag("{RECORD_TAG}{spec}")'
        return 0, ""

    def site_candidates(self, site: EmitSite) -> list[Candidate]:
        """Candidates for one call: from the data pointer's place, else by size."""
        try:
            return self._site_candidates(site)
        except DWARF_ERRORS:  # damaged DWARF: go on as if there were none
            self._dwarf = DwarfTypes(b"")
            return self._site_candidates(site)

    def _site_candidates(self, site: EmitSite) -> list[Candidate]:
        size = site.size
        if size.hi == U64 or size.hi == 0:
            return []
        exact = size.lo == size.hi

        def fits(n: int) -> bool:
            return n == size.hi or (not exact and 0 < size.hi <= n)

        data = site.data
        if isinstance(data, MapValuePtr) and data.off == 0:
            vm = next((x for x in self.obj.maps if x.name == data.name), None)
            if vm is not None and vm.value_type_id and fits(_size(self.btf, vm.value_type_id)):
                return [self._btf_cand(vm.value_type_id, "bytecode",
                                       f"value of map '{data.name}'")]
        if isinstance(data, GlobalPtr):
            for sec in self.obj.sections:
                for gv in sec.variables if sec.name == data.section else ():
                    if gv.offset == data.off and fits(_size(self.btf, gv.type_id)):
                        return [self._btf_cand(gv.type_id, "bytecode", f"global '{gv.name}'")]
        if isinstance(data, StackPtr) and self.dwarf.present:
            depth = self.facts.stack_depth.get(data.frame, 0)
            local = self.dwarf.local_at(data.frame, data.off + depth)
            if local is None:  # the depth guess missed: the one local that fits, if any
                fitting = [v for v in self.dwarf.locals_of(data.frame)
                           if fits(die_size(type_of(v.die)))]
                local = fitting[0] if len(fitting) == 1 else None
            if local is not None:
                t = type_of(local.die)
                if t is not None and fits(die_size(t)):
                    return [self._dwarf_cand(t, f"local '{local.name}' of {data.frame}")]
        if (isinstance(data, RingbufPtr) or data is None) and self.dwarf.present:
            found = {c_name(d): d for d in self.dwarf.pointed_structs(site.function)
                     if fits(die_size(d))}
            if not found and exact and site.helper_name == "bpf_ringbuf_reserve":
                # ``int *v = bpf_ringbuf_reserve(&rb, sizeof(int), 0)``: a scalar record
                found = {c_name(d): d for d in self.dwarf.pointed_scalars(site.function)
                         if fits(die_size(d))}
            if len(found) == 1:
                (name, d), = found.items()
                return [self._dwarf_cand(d, f"pointer local in {site.function}")]
        return self.size_candidates(fits)

    def size_candidates(self, fits: Callable[[int], bool]) -> list[Candidate]:
        out = [self._btf_cand(t.id, "bytecode", "size match") for t in self.pool
               if fits(_size(self.btf, t.id))]
        if out:
            return out
        if self.dwarf.present:
            seen: dict[str, Die] = {}
            for d in self.dwarf.structs:
                if c_name(d) not in seen and "{" not in c_name(d) and fits(die_size(d)):
                    seen[c_name(d)] = d
            out = [self._dwarf_cand(d, "size match in the object's source")
                   for d in seen.values()]
            if out:
                return out
        hdr = self.header
        if hdr is not None:
            for spec in dict.fromkeys(hdr.own):
                tid = hdr.lookup(spec)
                if tid and fits(hdr.size_of(tid)):
                    out.append(Candidate(spec, hdr.size_of(tid), "header",
                                         f"size match in {self.header_path}", _const(tid)))
        return out

    def _btf_cand(self, tid: int, source: str, why: str) -> Candidate:
        return Candidate(c_type_name(self.btf, tid), _size(self.btf, tid), source, why,
                         _const(tid))

    def _dwarf_cand(self, die: Die, why: str) -> Candidate:
        return Candidate(c_name(die), die_size(die), "dwarf", why,
                         lambda: self.dwarf_type(die))

    def from_bytecode(self, rec: MapRecord) -> None:
        per_site = [c for c in (self.site_candidates(s) for s in rec.sites) if c]
        if not per_site:
            return
        common = {c.key for c in per_site[0]}
        for cands in per_site[1:]:
            common &= {c.key for c in cands}
        everything: dict[tuple[str, int], Candidate] = {}
        for cands in per_site:
            for c in cands:
                everything.setdefault(c.key, c)
        chosen = [everything[k] for k in everything if k in common]
        if len(chosen) == 1:
            c = chosen[0]
            rec.type_id, rec.source = c.make(), c.source
            rec.detail = f"{c.why}; {_site_summary(rec.sites)}"
            return
        rec.candidates = chosen or list(everything.values())
        names = ", ".join(f"{c.name} ({c.size} bytes, {c.source}: {c.why})"
                          for c in rec.candidates)
        why = "fit equally" if chosen else "differ between call sites"
        rec.message = (f"map '{rec.map_name}': record type ambiguous, candidates {why}: {names};"
                       f" records are bytes; pick one with --event {rec.map_name}=CTYPE")


def _const(tid: int) -> Callable[[], int]:
    return lambda: tid


def _site_summary(sites: list[EmitSite]) -> str:
    parts = []
    for s in sites[:3]:
        size = str(s.size.lo) if s.size.lo == s.size.hi else f"{s.size.lo}..{s.size.hi}"
        parts.append(f"{s.helper_name} in {s.function} ({size} bytes)")
    more = f" and {len(sites) - 3} more" if len(sites) > 3 else ""
    return ", ".join(parts) + more


def resolve_event_types(obj: BpfObject, events: dict[str, str] | None = None,
                        header: str | None = None) -> EventTypes:
    """The record type of every PERF_EVENT_ARRAY and RINGBUF map of ``obj``.

    ``events`` maps map names to C types (``--event``); ``header`` is a C
    header to take types from (``--header``).  Raises :class:`EventTypeError`
    for an ``--event`` naming no such map or type and for a header that does
    not parse; never for a map it cannot type (see :attr:`MapRecord.message`).
    """
    events = dict(events or {})
    targets = [m for m in obj.maps if m.map_type in RECORD_MAP_TYPES]
    names = {m.name for m in targets}
    for name in events:
        if name not in names:
            have = ", ".join(sorted(names)) or "none"
            raise EventTypeError(f"--event {name}=...: no perf event array or ring buffer map"
                                 f" named '{name}' (these are: {have})")
    r = _Resolver(obj, header)
    if header:
        _ = r.header  # parse errors surface even when no map needs the header
    result: dict[str, MapRecord] = {}
    for m in targets:
        rec = MapRecord(m.name, m.map_type)
        result[m.name] = rec
        if m.name in events:
            rec.type_id, where = r.from_event(m, events[m.name])
            rec.source, rec.detail = "--event", f"--event {m.name}={events[m.name]} ({where})"
            continue
        tid = r.from_map_btf(m)
        if tid:
            rec.type_id, rec.source, rec.detail = tid, "map BTF", "__type(value, ...) on the map"
            continue
        tid, how = r.from_annotation(m)
        if tid:
            rec.type_id, rec.source, rec.detail = tid, "annotation", how
            continue
        rec.sites = [s for s in r.facts.sites if s.map_name == m.name]
        r.from_bytecode(rec)
        if not rec.type_id and not rec.message:
            rec.message = unresolved_message(m)
    return EventTypes(r.ext.finish(), result)
