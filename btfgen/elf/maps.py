"""Map definitions: BTF-defined ``.maps``, the legacy ``maps`` section and
``.struct_ops`` variables, decoded like libbpf's ``parse_btf_map_def``.

A BTF map is a global variable of an anonymous struct whose members encode
the definition: ``__uint(name, N)`` is ``int (*name)[N]`` (the number is the
array's element count), ``__type(key, T)`` is ``T *key`` and
``__array(values, struct inner)`` is ``struct inner *values[]``.
"""

from __future__ import annotations

import struct

from btfgen.btf_model import Array, Btf, Datasec, Enum, Enum64, Kind, Member, Ptr, Struct, Var
from btfgen.elf.image import ElfImage
from btfgen.elf.model import MapDef
from btfgen.errors import BtfgenError, ObjectError, quote_name
from btfgen.runtime import map_types

#: BPF_MAP_TYPE_* names in enum order (one table, shared with the runtime).
MAP_TYPE_NAMES = map_types.NAMES
PROG_ARRAY, ARRAY_OF_MAPS = map_types.PROG_ARRAY, map_types.ARRAY_OF_MAPS
HASH_OF_MAPS, STRUCT_OPS = map_types.HASH_OF_MAPS, map_types.STRUCT_OPS

#: BPF_F_* map flags by bit.
MAP_FLAG_NAMES = (
    "NO_PREALLOC", "NO_COMMON_LRU", "NUMA_NODE", "RDONLY", "WRONLY", "STACK_BUILD_ID",
    "ZERO_SEED", "RDONLY_PROG", "WRONLY_PROG", "CLONE", "MMAPABLE", "PRESERVE_ELEMS",
    "INNER_MAP", "LINK", "PATH_FD", "VTYPE_BTF_OBJ_FD", "TOKEN_FD", "SEGV_ON_FAULT",
    "NO_USER_CONV",
)
BPF_F_LINK = 1 << 13
#: LIBBPF_PIN_* values.
PIN_NAMES = ("none", "by_name")

_INT_FIELDS = ("type", "max_entries", "map_flags", "numa_node", "key_size", "value_size",
               "pinning", "map_extra")


map_type_name = map_types.type_name


def map_flag_names(flags: int) -> list[str]:
    """``["NO_PREALLOC", "MMAPABLE"]`` for the set BPF_F_* bits (unknown bits as hex)."""
    names = [n for bit, n in enumerate(MAP_FLAG_NAMES) if flags & (1 << bit)]
    rest = flags & ~((1 << len(MAP_FLAG_NAMES)) - 1)
    if rest:
        names.append(f"0x{rest:x}")
    return names


def btf_maps(btf: Btf) -> list[MapDef]:
    """Every map of the ``.maps`` DATASEC (in offset order, as in the fixed-up BTF)."""
    maps = []
    for sec in btf.find(".maps", Kind.DATASEC):
        assert isinstance(sec, Datasec)
        for vsi in sec.vars:
            var = btf.type(vsi.type_id)
            if not isinstance(var, Var):
                raise ObjectError(f".maps: entry type id {vsi.type_id} is not a VAR")
            maps.append(parse_map_def(btf, var.name, var.type_id, inner=False))
    return maps


def parse_map_def(btf: Btf, name: str, type_id: int, *, inner: bool) -> MapDef:
    """Decode the map definition struct ``type_id`` of map ``name``."""
    try:
        return _parse_map_def(btf, name, type_id, inner)
    except ObjectError:
        raise  # an inner map's error, already naming it
    except (_DefError, BtfgenError) as e:
        raise ObjectError(f"map {quote_name(name)}: {e}") from None


class _DefError(Exception):
    """A problem with the definition being parsed (parse_map_def adds the map name)."""


def _parse_map_def(btf: Btf, name: str, type_id: int, inner: bool) -> MapDef:
    dfn = btf.skip_modifiers(type_id)
    if not isinstance(dfn, Struct):
        raise _DefError(f"definition is a {dfn.kind.name}, not a struct")
    m = MapDef(name=name, map_type=0, map_type_name="UNSPEC")
    for i, mem in enumerate(dfn.members):
        field = mem.name
        if not field:
            raise _DefError(f"member #{i} has no name")
        if field in _INT_FIELDS:
            value = _field_int(btf, mem)
            if field == "type":
                m.map_type, m.map_type_name = value, map_type_name(value)
            elif field in ("key_size", "value_size"):
                known = getattr(m, field)
                if known and known != value:
                    raise _DefError(f"conflicting {field} {known} and {value}")
                setattr(m, field, value)
            elif field == "pinning":
                if inner:
                    raise _DefError("inner map definitions cannot be pinned")
                if value not in (0, 1):
                    raise _DefError(f"invalid pinning value {value}")
                m.pinning = value
            else:
                setattr(m, field, value)
        elif field in ("key", "value"):
            ptr = btf.type(mem.type_id)
            if not isinstance(ptr, Ptr):
                raise _DefError(f"{field} spec is a {ptr.kind.name}, not a pointer")
            size = btf.size_of(ptr.type_id)
            known = getattr(m, f"{field}_size")
            if known and known != size:
                raise _DefError(f"conflicting {field}_size {known} and sizeof({field}) {size}")
            setattr(m, f"{field}_size", size)
            setattr(m, f"{field}_type_id", ptr.type_id)
        elif field == "values":
            _parse_values(btf, m, mem, inner, last=i == len(dfn.members) - 1)
        # Unknown members are ignored, as libbpf does outside strict mode.
    return m


def _field_int(btf: Btf, mem: Member) -> int:
    """``int (*name)[N]`` -> N; also the newer ``enum { x = N } name`` encoding."""
    t = btf.skip_modifiers(mem.type_id)
    if isinstance(t, Ptr):
        arr = btf.type(t.type_id)
        if isinstance(arr, Array):
            return arr.nelems
        raise _DefError(f"{quote_name(mem.name)} is a pointer to {arr.kind.name}, not to an array")
    if isinstance(t, (Enum, Enum64)) and len(t.values) == 1:
        return t.values[0].value
    raise _DefError(f"{quote_name(mem.name)} is a {t.kind.name}, not an encoded number")


def _parse_values(btf: Btf, m: MapDef, mem: Member, inner: bool, *, last: bool) -> None:
    if inner:
        raise _DefError("multi-level inner maps are not supported")
    if not last:
        raise _DefError("'values' must be the last member")
    if m.map_type not in (ARRAY_OF_MAPS, HASH_OF_MAPS, PROG_ARRAY):
        raise _DefError(f"'values' on a {m.map_type_name} map (needs a map-in-map or prog array)")
    if m.value_size and m.value_size != 4:
        raise _DefError(f"value_size {m.value_size} with 'values' (must be 4)")
    m.value_size = 4
    arr = btf.type(mem.type_id)
    if not isinstance(arr, Array):
        raise _DefError(f"'values' is a {arr.kind.name}, not an array")
    if arr.nelems:
        raise _DefError("'values' must be a zero-sized array")
    ptr = btf.skip_modifiers(arr.type_id)
    if not isinstance(ptr, Ptr):
        raise _DefError(f"'values' elements are {ptr.kind.name}, not pointers")
    target = btf.skip_modifiers(ptr.type_id)
    if m.map_type == PROG_ARRAY:
        if target.kind != Kind.FUNC_PROTO:
            raise _DefError(f"prog array 'values' point to {target.kind.name}, not functions")
        return
    if not isinstance(target, Struct):
        raise _DefError(f"'values' point to {target.kind.name}, not a map definition struct")
    m.inner = parse_map_def(btf, f"{m.name}.inner", target.id, inner=True)


def legacy_maps(elf: ElfImage, btf: Btf) -> list[MapDef]:
    """``struct bpf_map_def`` records of the ``maps`` section, named by their symbols.

    Key/value types come from a ``struct ____btf_map_<name>`` if the object has
    one (the old iproute2/bcc convention); otherwise only sizes are known.
    """
    sec = elf.section("maps")
    if sec is None:
        return []
    syms = sorted((s for s in elf.symbols_in(sec.index)
                   if s.type not in ("STT_SECTION", "STT_FILE") and s.name),
                  key=lambda s: s.value)
    if not syms:
        return []
    e = "<" if elf.byteorder == "little" else ">"
    maps = []
    for sym in syms:
        size = sym.size or sec.size // len(syms)
        if size < 4 or sym.value + size > len(sec.data):
            raise ObjectError(f"legacy map {quote_name(sym.name)} at {sym.value}+{size} overruns"
                              f" the 'maps' section ({len(sec.data)} bytes)")
        rec = sec.data[sym.value:sym.value + min(size, 20)].ljust(20, b"\0")
        mtype, key_size, value_size, max_entries, flags = struct.unpack(e + "5I", rec)
        m = MapDef(name=sym.name, map_type=mtype, map_type_name=map_type_name(mtype),
                   key_size=key_size, value_size=value_size, max_entries=max_entries,
                   map_flags=flags, source="legacy")
        for t in btf.find(f"____btf_map_{sym.name}", Kind.STRUCT):
            assert isinstance(t, Struct)
            for mem in t.members:
                if mem.name in ("key", "value"):
                    setattr(m, f"{mem.name}_type_id", mem.type_id)
        maps.append(m)
    return maps


def struct_ops_maps(btf: Btf) -> list[MapDef]:
    """One STRUCT_OPS map per variable of ``.struct_ops`` / ``.struct_ops.link``."""
    maps = []
    for t in btf.all_types():
        if not isinstance(t, Datasec) or t.name not in (".struct_ops", ".struct_ops.link"):
            continue
        for vsi in t.vars:
            var = btf.type(vsi.type_id)
            if not isinstance(var, Var):
                continue
            value = btf.skip_modifiers(var.type_id)
            if not isinstance(value, Struct):
                raise ObjectError(f"struct_ops map {quote_name(var.name)} is not a struct")
            maps.append(MapDef(
                name=var.name, map_type=STRUCT_OPS, map_type_name="STRUCT_OPS", key_size=4,
                value_size=value.size, value_type_id=value.id, max_entries=1,
                map_flags=BPF_F_LINK if t.name.endswith(".link") else 0, source="struct_ops",
            ))
    return maps
