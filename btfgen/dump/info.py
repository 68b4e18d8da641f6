"""``btfgen info``: a summary of an object for people.

Programs (name, section, attach kind), maps (type, key/value types, limits,
flags, pinning, inner map), global variables per data section and the
license.  Names come from the file and are untrusted: anything that is not
printable is shown escaped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from btfgen.btf_c import c_type_name
from btfgen.btf_model import (
    Btf,
)
from btfgen.elf.maps import PIN_NAMES, map_flag_names
from btfgen.elf.model import BpfObject, DataSection, MapDef
from btfgen.errors import BtfgenError, show

if TYPE_CHECKING:
    from btfgen.discovery.resolve import EventTypes

def _key_value(btf: Btf, type_id: int, size: int) -> str:
    if type_id:
        return f"{c_type_name(btf, type_id)} ({size} bytes)"
    return f"{size} bytes" if size else "-"


def _map_lines(obj: BpfObject, m: MapDef, indent: str,
               records: EventTypes | None = None) -> list[str]:
    btf = obj.btf
    lines = [f"{indent}{show(m.name)}: {m.map_type_name}"
             + (f" ({m.source})" if m.source != "btf" else "")]
    sub = indent + "    "
    lines.append(f"{sub}key: {_key_value(btf, m.key_type_id, m.key_size)}")
    lines.append(f"{sub}value: {_key_value(btf, m.value_type_id, m.value_size)}")
    if m.max_entries:
        lines.append(f"{sub}max_entries: {m.max_entries}")
    if m.map_flags:
        lines.append(f"{sub}flags: {' | '.join(map_flag_names(m.map_flags))}")
    if m.pinning:
        pin = PIN_NAMES[m.pinning] if m.pinning < len(PIN_NAMES) else str(m.pinning)
        lines.append(f"{sub}pinning: {pin}")
    if m.numa_node:
        lines.append(f"{sub}numa_node: {m.numa_node}")
    if m.map_extra:
        lines.append(f"{sub}map_extra: {m.map_extra:#x}")
    lines.extend(_map_record_lines(m, sub, records))
    if m.inner is not None:
        lines.append(f"{sub}inner map:")
        lines.extend(_map_lines(obj, m.inner, sub + "  ", records))
    return lines


def _map_record_lines(m: MapDef, indent: str, records: EventTypes | None) -> list[str]:
    """The record type of a perf event array / ring buffer and where it was found."""
    if records is None or m.name not in records.maps:
        return []
    r = records.maps[m.name]
    if r.resolved:
        btf = records.btf
        try:
            size = f", {btf.size_of(r.type_id)} bytes"
        except BtfgenError:
            size = ""
        return [f"{indent}record: {c_type_name(btf, r.type_id)}{size}"
                f" [{r.source}: {show(r.detail)}]"]
    if r.ambiguous:
        names = ", ".join(show(c.name) for c in r.candidates)
        return [f"{indent}record: ambiguous ({names}); records are bytes --"
                f" pick one with --event {show(m.name)}=CTYPE"]
    return [f"{indent}record: unknown, records are bytes -- type it with"
            f" --event {show(m.name)}=CTYPE or BTFGEN_RECORD({show(m.name)}, CTYPE)"]


def _section_lines(btf: Btf, sec: DataSection) -> list[str]:
    flags = "read-only" if sec.readonly else "writable"
    lines = [f"  {show(sec.name)} ({sec.size} bytes, {flags}):"]
    if not sec.variables:
        lines.append("    (no variables)")
    for v in sec.variables:
        static = " [static]" if v.linkage == 0 else ""
        lines.append(f"    {v.offset:>6}  {v.size:>6}  {show(v.name)}: "
                     f"{c_type_name(btf, v.type_id)}{static}")
    return lines


def format_info(obj: BpfObject, events: dict[str, str] | None = None,
                header: str | None = None) -> str:
    """The ``btfgen info`` text for ``obj``; ``events``/``header`` as ``--event``/``--header``
    (see :func:`btfgen.discovery.resolve.resolve_event_types`)."""
    out = [f"file: {show(obj.path)}"]
    if not obj.is_elf:
        btf = obj.btf
        split = "" if btf.base is None else \
            f", ids {btf.start_id}..{btf.type_count - 1} split on a base of {btf.start_id - 1}"
        out.append(f"raw BTF: {len(btf)} types ({obj.byteorder}-endian{split});"
                   " no programs, maps or globals")
        return "\n".join(out) + "\n"
    out.append(f"byte order: {obj.byteorder}-endian")
    out.append(f"license: {show(obj.license) if obj.license else '(none)'}")
    if obj.kern_version:
        v = obj.kern_version
        out.append(f"kernel version: {v >> 16}.{(v >> 8) & 0xFF}.{v & 0xFF}")

    out.append(f"\nprograms ({len(obj.programs)}):")
    width = max((len(show(p.name)) for p in obj.programs), default=0)
    for p in obj.programs:
        kind = p.attach_kind or "unknown"
        extra = f" ({p.prog_type}{', sleepable' if p.sleepable else ''})"
        out.append(f"  {show(p.name):<{width}}  {kind}{extra}  SEC(\"{show(p.section)}\")")

    from btfgen.discovery.resolve import resolve_event_types

    records = resolve_event_types(obj, events, header)
    out.append(f"\nmaps ({len(obj.maps)}):")
    for m in obj.maps:
        out.extend(_map_lines(obj, m, "  ", records))

    out.append(f"\nglobals ({sum(len(s.variables) for s in obj.sections)}):")
    if obj.sections:
        out.append("    offset    size  name: type")
    for sec in obj.sections:
        out.extend(_section_lines(obj.btf, sec))
    return "\n".join(out) + "\n"
