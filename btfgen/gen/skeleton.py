"""The skeleton part of a generated module: what ``skeleton.py.j2`` renders.

:func:`build_skeleton_context` is called by :mod:`btfgen.gen.module` for ELF
inputs.  It decides the typed attributes of ``<CamelStem>Skel``: one per map
(runtime class by map type, key/value codecs from BTF), per program, and one
namespace class per global data section with a typed descriptor per variable.

Perf and ring buffer maps carry no record type in BTF (their values are fds
or nothing): their record types are what :mod:`btfgen.discovery.resolve`
resolved (``events``, ids in the BTF of ``types``); a map it left untyped gets
records as bytes (``skel.maps.events.with_record(Cls)`` types them).  When the
bytecode sends records shorter than their type (variable-length records), the
codec gets that ``min_size``.

Names from BTF are untrusted: every attribute name goes through
:func:`btfgen.gen.naming.attr_name` and is made unique per namespace.
"""

from __future__ import annotations

import base64
import os
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from btfgen.elf.model import BpfObject, DataSection, MapDef
from btfgen.gen.model import LINE_WIDTH, TypeRefs
from btfgen.gen.naming import UniqueNames, attr_name, camel, doc_text, py_str, shown, stem_of
from btfgen.runtime.map_types import PERF_EVENT_ARRAY, RINGBUF, SIGNATURES, class_name

if TYPE_CHECKING:
    from btfgen.discovery.resolve import EventTypes


#: Attributes of the runtime classes that generated names must not shadow.
SKELETON_API = frozenset({
    "maps", "progs", "links", "obj", "loaded", "load", "attach", "detach", "destroy", "open",
    "open_and_load", "OBJECT", "OBJECT_NAME",
})
SECTION_API = frozenset({"size", "read_bytes", "get", "set", "SECTION"})
NAMESPACE_API: frozenset[str] = frozenset()

#: One import for everything the skeleton uses (generated class names never start with "_").
RUNTIME_IMPORTS = ["from btfgen import runtime as _rt"]


@dataclass
class Attr:
    """One typed attribute: ``name: hint = expr`` (lines already wrapped)."""

    name: str
    doc: str
    lines: list[str] = field(default_factory=list)


@dataclass
class SectionNs:
    """A global data section rendered as a GlobalSection subclass."""

    attr: str
    cls: str
    section: str
    readonly: bool
    doc: str
    vars: list[Attr] = field(default_factory=list)
    #: ``self.<attr> = <cls>(...)`` in the skeleton's _bind().
    bind: list[str] = field(default_factory=list)


def _call(indent: str, head: str, fn: str, args: list[str]) -> list[str]:
    """``head = fn(args)`` on one line if it fits, else one argument per line (a
    line still too long -- a name from BTF -- makes the module exempt itself from
    E501 as a whole: a line's own ``noqa`` is RUF100 under ruff's default rules)."""
    one = f"{indent}{head}{fn}({', '.join(args)})"
    if len(one) <= LINE_WIDTH:
        return [one]
    lines = [f"{indent}{head}{fn}("]
    for a in args:
        line = f"{indent}    {a},"
        lines.append(line)
    lines.append(f"{indent})")
    return lines


def min_record_size(events: EventTypes, map_name: str) -> int | None:
    """The smallest record the bytecode sends to ``map_name``, when known: below
    the record type's size, records are variable-length and get zero-padded to decode."""
    rec = events.maps.get(map_name)
    found = rec.size_range if rec is not None else None
    return found[0] if found else None


def _map_attr(m: MapDef, refs: TypeRefs, attr: str, events: EventTypes) -> Attr:
    handle = f"skel._map({py_str(m.name)})"
    doc = f"{m.map_type_name or m.map_type} map ``{shown(m.name)}``"
    if m.map_type in (PERF_EVENT_ARRAY, RINGBUF):
        cls = "_rt.PerfEventArray" if m.map_type == PERF_EVENT_ARRAY else "_rt.RingBuf"
        rid = events.record_type_id(m.name)
        if rid:
            refs.ensure(rid, f"{m.name}_record")
            least = min_record_size(events, m.name)
            hint, args = refs.hint(rid), [handle, refs.codec(rid, least)]
            doc += f", records: ``{shown(refs.btf.c_spelling(rid))}``"
        else:
            hint, args = "bytes", [handle]
            doc += ", records: raw bytes (no record type known)"
        return Attr(attr, doc, _call("        ", f"self.{attr}: {cls}[{hint}] = ", cls, args))

    def codec(tid: int, size: int) -> tuple[str, str]:
        if tid:
            return refs.hint(tid), refs.codec(tid)
        return "bytes", refs.raw_codec(size)

    # The runtime's table (btfgen.runtime.map_types) picks the class and its arguments.
    name = class_name(m.map_type)
    cls, sig = f"_rt.{name}", SIGNATURES[name]
    hints, args = [], [handle]
    for part, tid, size in (("k", m.key_type_id, m.key_size), ("v", m.value_type_id,
                                                                 m.value_size)):
        if part in sig:
            h, c = codec(tid, size)
            hints.append(h)
            args.append(c)
    hint = f"{cls}[{', '.join(hints)}]" if hints else cls
    if name.startswith("PerCpu"):
        doc += f", one ``{hints[-1]}`` per possible CPU"
    return Attr(attr, doc, _call("        ", f"self.{attr}: {hint} = ", cls, args))


def _section_attr_name(sec: DataSection) -> str:
    """``.rodata`` -> ``rodata``; ``.data.custom`` -> ``data_custom``."""
    return sec.name.lstrip(".").replace(".", "_")


def _section(sec: DataSection, refs: TypeRefs, cls_prefix: str, attr: str) -> SectionNs:
    ro = sec.readonly or sec.name == ".kconfig"
    doc = (f"Globals of ``{doc_text(sec.name)}``: "
           + ("set before load(), read-only after." if ro else
              "initial values before load(), kernel memory after."))
    cls = f"_{cls_prefix}{camel(attr)}"
    ns = SectionNs(attr, cls, sec.name, ro, doc,
                   bind=_call("        ", f"self.{attr} = ", cls,
                              [f"self._map({py_str(sec.name)})", f"readonly={ro}"]))
    names = UniqueNames(SECTION_API)
    for v in sec.variables:
        if v.linkage == 2 and sec.name != ".kconfig":
            continue
        refs.ensure(v.type_id, v.name)
        name = names.add(attr_name(v.name, SECTION_API))
        hint, codec = refs.hint(v.type_id), refs.codec(v.type_id)
        vdoc = f"``{shown(v.name)}`` at offset {v.offset}"
        ns.vars.append(Attr(name, vdoc, _call("    ", f"{name}: _rt.var[{hint}] = ",
                                              "_rt.var", [codec, str(v.offset)])))
    return ns


def embedded_lines(data: bytes) -> list[str]:
    """``data`` zlib-compressed and base64-encoded, in lines that fit the module:
    a third of the hex text's size for a typical object, and as fast to import
    (zlib and binascii are built into CPython)."""
    text = base64.b64encode(zlib.compress(data, 9)).decode("ascii")
    chunk = LINE_WIDTH - 8
    return [text[i:i + chunk] for i in range(0, len(text), chunk)]


def build_skeleton_context(obj: BpfObject, types: TypeRefs, events: EventTypes,
                           embed: bytes | None = None) -> dict[str, Any]:
    """Template variables for ``skeleton.py.j2`` (plus ``imports``/``exports``/
    ``stdlib``).

    ``events`` gives perf/ring record types: see the module docstring.
    ``embed``: the object bytes to embed (default ``obj.data``; the generator
    passes the object without DWARF).
    """
    class_name = types.reserved_prefix or f"{camel(stem_of(obj.path))}Skel"
    top = UniqueNames(SKELETON_API)
    map_names = UniqueNames(NAMESPACE_API)
    maps = [_map_attr(m, types, map_names.add(attr_name(m.name)), events)
            for m in obj.maps]
    prog_names = UniqueNames(NAMESPACE_API)
    progs = []
    for p in obj.programs:
        a = prog_names.add(attr_name(p.name))
        progs.append(Attr(a, f"``{shown(p.section)}``",
                          _call("        ", f"self.{a}: _rt.Program = ", "skel._prog",
                                [py_str(p.name)])))
    sections = []
    for sec in obj.sections:
        if not sec.variables or sec.name not in (".kconfig",) and not sec.name.startswith(
                (".data", ".rodata", ".bss")):
            continue
        sections.append(_section(sec, types, class_name, top.add(
            attr_name(_section_attr_name(sec), SKELETON_API))))
    data = obj.data if embed is None else embed
    packed = embedded_lines(data)
    return {
        "imports": RUNTIME_IMPORTS,
        "stdlib": ["import binascii", "import zlib"],
        "exports": [class_name],
        "skel": {
            "class_name": class_name,
            "object_name": py_str(stem_of(obj.path)),
            "file_name": doc_text(os.path.basename(obj.path)),
            "object_size": len(data),
            "object_lines": packed,
            "maps": maps,
            "progs": progs,
            "sections": sections,
        },
    }
