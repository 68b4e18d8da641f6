"""``btfgen gen``: object -> selected types -> rendered Python module.

Data flows one way: :func:`btfgen.elf.reader.read_input` gives a
:class:`~btfgen.elf.model.BpfObject`; :mod:`btfgen.gen.select` picks the
roots; :class:`btfgen.gen.model.TypeRefs` turns them into classes;
:mod:`btfgen.gen.record_code` and :mod:`btfgen.gen.cdef` write their code; the jinja2
templates in ``btfgen/templates`` render the module.  For an ELF object,
:func:`btfgen.gen.skeleton.build_skeleton_context` adds the skeleton class: the returned
dict is available to ``skeleton.py.j2`` as template variables, and its
optional ``imports`` (lines like ``from btfgen.runtime.x import Y``) and
``exports`` (names for ``__all__``) keys are merged into the module's.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

import jinja2

from btfgen.elf.model import BpfObject
from btfgen.elf.reader import read_input
from btfgen.elf.strip import strip_debug
from btfgen.gen.cdef import Cdef, build_cdef
from btfgen.gen.model import (
    CODEC_MODULE,
    LINE_WIDTH,
    EnumClass,
    GenerateError,
    RecordClass,
    TypeRefs,
)
from btfgen.gen.naming import camel, doc_text, py_str, stem_of
from btfgen.gen.options import GenOptions
from btfgen.gen.output import write_atomic
from btfgen.gen.record_code import field_lines, format_literal, render_record
from btfgen.gen.record_methods import record_methods, uses_factory
from btfgen.gen.select import select_roots
from btfgen.gen.skeleton import build_skeleton_context
from btfgen.version import __version__

__all__ = ["generate_to_file", "generate_module", "render_module", "default_output",
           "GeneratedModule", "GenerateError"]


def default_output(path: str, name: str | None = None) -> str:
    """``./<stem>_skel.py`` for ``path``."""
    return f"{name or stem_of(path)}_skel.py"


def skeleton_class_name(stem: str) -> str:
    """``probe`` -> ``ProbeSkel``."""
    return f"{camel(stem)}Skel"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("btfgen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["pystr"] = py_str
    env.filters["doc"] = doc_text
    env.filters["fmt_literals"] = format_literal
    env.filters["field_lines"] = field_lines
    env.filters["record_methods"] = record_methods
    env.globals["line_width"] = LINE_WIDTH
    return env


def _sorted_imports(lines: list[str]) -> list[str]:
    def key(line: str) -> tuple[int, str]:
        words = line.split()
        return (1 if words[0] == "from" else 0, words[1] if len(words) > 1 else line)

    return sorted(set(lines), key=key)


def render_module(obj: BpfObject, refs: TypeRefs, skeleton: dict[str, Any] | None) -> str:
    """Render the module for ``obj`` whose types are in ``refs`` (all ensured)."""
    classes = refs.classes()
    for c in classes:
        if isinstance(c, RecordClass):
            render_record(c, refs.bo)
    cdef = build_cdef(refs, classes)
    records = [c for c in classes if isinstance(c, RecordClass)]
    enums = [c for c in classes if isinstance(c, EnumClass)]
    uses_field = any(r.keeps_raw or any(f.fresh for f in r.fields) for r in records)
    factory = any(uses_factory(r) for r in records)
    stdlib = []
    if records:
        stdlib += ["import struct",
                   "from dataclasses import dataclass" + (", field" if uses_field else "")]
    enum_names = [name for name, used in (("Enum", factory), ("IntEnum", enums)) if used]
    if enum_names:
        stdlib.append(f"from enum import {', '.join(enum_names)}")
    if records:
        stdlib.append("from typing import ClassVar")
    if skeleton:
        stdlib = sorted(set(stdlib) | set(skeleton.get("stdlib", [])),
                        key=lambda line: (line.startswith("from"), line.split()[1]))
    imports: list[str] = list(skeleton.get("imports", [])) if skeleton else []
    if refs.uses_codec or imports:
        # With btfgen imports present, cffi's FFI comes through the codec
        # module: a plain cffi import next to them sorts differently depending
        # on whether a linter sees btfgen as first- or third-party.
        imports.append(f"from btfgen.runtime import codec as {CODEC_MODULE}")
    sized = bool(cdef.enum_bases or cdef.empty)
    if sized:
        imports.append("from btfgen.runtime.sized_ffi import SizedFFI")
    exports = [c.name for c in classes] + ["TYPES", "ffi"]
    if skeleton:
        exports += list(skeleton.get("exports", []))
    exports.sort(key=dunder_all_key)
    types = sorted(refs.c_names.items())
    source = doc_text(os.path.basename(obj.path))
    context: dict[str, Any] = {
        "version": __version__,
        "source": source,
        "sha256": obj.sha256,
        "classes": classes,
        "records": records,
        "enums": enums,
        "uses_field": uses_field,
        "uses_factory": factory,
        "stdlib_imports": stdlib,
        "runtime_imports": _sorted_imports(imports),
        "all_names": exports,
        "types": types,
        "cdef": cdef.chunks,
        "ffi_class": "SizedFFI" if sized else f"{CODEC_MODULE}.FFI" if imports else "FFI",
        "ffi_args": _sized_ffi_args(cdef) if sized else [],
        "skeleton": bool(skeleton),
    }
    if skeleton:
        clash = set(skeleton) & set(context)
        if clash - {"skeleton"}:
            raise RuntimeError(f"skeleton context overrides {sorted(clash)}")
        context.update({k: v for k, v in skeleton.items() if k not in ("skeleton", "stdlib")})
    return _allow_long_lines(_environment().get_template("module.py.j2").render(context))


def _sized_ffi_args(cdef: Cdef) -> list[str]:
    """The argument lines of ``SizedFFI(...)``: enums and empty structs to size."""
    lines = []
    if cdef.enum_bases:
        lines.append("enums={")
        lines += [f"    {py_str(tag)}: {py_str(base)},"
                  for tag, base in sorted(cdef.enum_bases.items())]
        lines.append("},")
    if cdef.empty:
        lines.append("empty=(")
        lines += [f"    {py_str(tag)}," for tag in sorted(cdef.empty)]
        lines.append("),")
    return lines


def dunder_all_key(name: str) -> tuple[int, tuple[str | int, ...]]:
    """``__all__`` order as ruff's RUF022 wants it (isort style): CONSTANTS, then
    Classes, then the rest, each in natural order (``S2`` before ``S10``)."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    parts = re.split(r"(\d+)", name)
    return group, tuple(int(p) if i % 2 else p for i, p in enumerate(parts))


def _allow_long_lines(text: str) -> str:
    """``text``, told to ruff not to count line lengths when some line is longer
    than :data:`~btfgen.gen.model.LINE_WIDTH`: that happens only for names from
    BTF too long to fit (a C name in the cdef or a docstring, a class named
    after it), and those lines cannot be wrapped."""
    if all(len(line) <= LINE_WIDTH for line in text.splitlines()):
        return text
    head, sep, rest = text.partition("# Do not edit: rerun `btfgen gen` instead.\n")
    # RUF100 too: under ruff's default rules E501 is off and its noqa "unused".
    return (f"{head}{sep}# Names from BTF too long for {LINE_WIDTH} columns:\n"
            f"# ruff: noqa: E501, RUF100\n{rest}")


@dataclass(frozen=True)
class GeneratedModule:
    """What :func:`generate_module` made: the module's text, and notes for people."""

    text: str
    #: One line per perf/ring map left untyped or ambiguous (records are bytes).
    messages: tuple[str, ...] = ()


def generate_module(path: str, options: GenOptions | None = None) -> GeneratedModule:
    """The module for the object or raw BTF file at ``path``.

    ``options.events`` (``--event MAP=CTYPE``) and ``options.header`` (``--header``)
    help :func:`btfgen.discovery.resolve.resolve_event_types` find perf/ring record
    types; its one-line notes about maps left untyped are the result's ``messages``.
    Types are found with the object's DWARF; the module embeds the object
    without it unless ``options.keep_debug``.
    """
    opts = options or GenOptions()
    types = list(opts.types)
    events = dict(opts.events) or None
    base_btf = read_input(opts.base).btf if opts.base else None
    obj = read_input(path, base_btf)
    stem = opts.name or stem_of(path)
    btf = obj.btf
    event_types = None
    messages: tuple[str, ...] = ()
    if obj.is_elf or events or opts.header:
        # imported here: record type discovery (pycparser, DWARF) is for ELF
        # objects; raw BTF (vmlinux --type) starts faster without it
        from btfgen.discovery.resolve import resolve_event_types

        event_types = resolve_event_types(obj, events, opts.header)
        btf = event_types.btf
        messages = tuple(event_types.messages())
    refs = TypeRefs(btf, obj.byteorder, skeleton_class_name(stem))
    try:
        roots = select_roots(obj, types, btf)
        extra = len(types)
        for root in roots[:len(roots) - extra]:
            refs.ensure(root.type_id, root.place)
        if event_types is not None:
            for map_name in event_types.maps:
                record = event_types.record_type_id(map_name)
                if record:
                    refs.ensure(record, f"{map_name}_record")
        for root in roots[len(roots) - extra:]:
            refs.ensure(root.type_id, root.place)
        skeleton = None
        if event_types is not None and obj.is_elf:
            embed = obj.data if opts.keep_debug else strip_debug(obj.data)
            skeleton = build_skeleton_context(obj, refs, event_types, embed)
        return GeneratedModule(render_module(obj, refs, skeleton), messages)
    except RecursionError:
        raise GenerateError("types nested too deeply") from None


def generate_to_file(path: str, options: GenOptions | None = None,
                     output: str | None = None) -> tuple[str, tuple[str, ...]]:
    """Generate the module for ``path`` and write it atomically (to ``output``, by
    default ``<stem>_skel.py``); returns the output path and the messages."""
    made = generate_module(path, options)
    out = output or default_output(path, options.name if options else None)
    write_atomic(out, made.text)
    return out, made.messages
