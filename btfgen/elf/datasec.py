"""Fix up DATASEC sizes and variable offsets the way libbpf does at open.

clang writes every DATASEC with size 0 and its variables at offset 0; the
real values are the ELF section's size and the variables' symbol values.
libbpf patches its copy of the BTF in ``bpf_object__open`` (``btf_fixup_datasec``
and, for ``.kconfig``, the extern layout in ``bpf_object__collect_externs``).
We do the same on a *copy*: the parsed BTF stays as the file has it (that is
what ``bpftool btf dump file`` prints), and the fixed-up one is what the
object model and the generator use.

clang already writes the real offsets of static variables; when a DATASEC
needs fixing we still take them from their local symbol if it is unique
(libbpf skips static variables).  Global variables with hidden visibility
become static, as libbpf >= 1.2 does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from btfgen.btf_model import Btf, BtfType, Datasec, Linkage, Var, VarSecinfo
from btfgen.elf.image import ElfImage, ElfSymbol
from btfgen.elf.sections import KCONFIG_SEC
from btfgen.errors import BtfError, quote_name

KSYMS_SEC = ".ksyms"


def fixup_datasecs(btf: Btf, elf: ElfImage) -> Btf:
    """A copy of ``btf`` with DATASEC sizes, variable offsets and linkage fixed up.

    Types that need no change are shared with ``btf``; changed DATASEC and VAR
    entries are new objects.
    """
    types: list[BtfType] = list(btf.types)
    fixed = Btf(header=btf.header, types=types, strings=btf.strings, byteorder=btf.byteorder,
                base=btf.base, start_id=btf.start_id, start_str_off=btf.start_str_off)
    for i, t in enumerate(btf.types):
        if not isinstance(t, Datasec):
            continue
        if t.name == KCONFIG_SEC:
            types[i] = _layout_kconfig(fixed, t, types)
        elif t.name != KSYMS_SEC:
            types[i] = _fixup_section(fixed, t, elf, types)
    return fixed


def _replace_var(types: list[BtfType], btf: Btf, type_id: int,
                 change: Callable[[Var], Var]) -> None:
    idx = type_id - btf.start_id
    if 0 <= idx < len(types):
        var = types[idx]
        if isinstance(var, Var):
            types[idx] = change(var)


def _sorted(sec: Datasec, size: int, vars_: list[VarSecinfo]) -> Datasec:
    vars_.sort(key=lambda v: v.offset)  # stable, like libbpf's qsort by offset
    return dataclasses.replace(sec, size=size, vars=vars_)


def _fixup_section(btf: Btf, sec: Datasec, elf: ElfImage, types: list[BtfType]) -> Datasec:
    elf_sec = elf.section(sec.name)
    vars_ = [VarSecinfo(v.type_id, v.offset, v.size) for v in sec.vars]
    if elf_sec is None:
        return _sorted(sec, sec.size, vars_)  # nothing to fix it up from
    fixup_offsets = sec.size == 0
    size = elf_sec.size if fixup_offsets else sec.size
    globals_by_name = {s.name: s for s in elf.symbols
                       if s.type == "STT_OBJECT" and s.bind in ("STB_GLOBAL", "STB_WEAK")}
    locals_here: dict[str, list[ElfSymbol]] = {}
    for s in elf.symbols_in(elf_sec.index):
        if s.bind == "STB_LOCAL" and s.type in ("STT_OBJECT", "STT_NOTYPE"):
            locals_here.setdefault(s.name, []).append(s)
    for vsi in vars_:
        var = btf.type(vsi.type_id)
        if not isinstance(var, Var) or var.linkage == Linkage.EXTERN:
            continue
        if var.linkage == Linkage.STATIC:
            candidates = locals_here.get(var.name, [])
            if fixup_offsets and len(candidates) == 1:
                vsi.offset = candidates[0].value
            continue
        sym = globals_by_name.get(var.name)
        if sym is None:
            raise BtfError(f"section {quote_name(sec.name)}: no ELF symbol for variable"
                           f" {quote_name(var.name)}")
        if fixup_offsets:
            vsi.offset = sym.value
        if sym.visibility in ("STV_HIDDEN", "STV_INTERNAL"):
            _replace_var(types, btf, vsi.type_id,
                         lambda v: dataclasses.replace(v, linkage=int(Linkage.STATIC)))
    for vsi in vars_:
        if vsi.offset + vsi.size > size:
            raise BtfError(
                f"section '{sec.name}': variable type id {vsi.type_id} at {vsi.offset}"
                f"+{vsi.size} overruns the section ({size} bytes)"
            )
    return _sorted(sec, size, vars_)


def _layout_kconfig(btf: Btf, sec: Datasec, types: list[BtfType]) -> Datasec:
    """Kconfig externs are laid out by libbpf: by alignment (descending), size
    (ascending), then name, each at the next suitably aligned offset."""
    entries = []
    for v in sec.vars:
        var = btf.type(v.type_id)
        if not isinstance(var, Var):
            raise BtfError(f"section {quote_name(sec.name)}: entry type id {v.type_id}"
                           " is not a VAR")
        size, align = btf.size_of(var.type_id), btf.align_of(var.type_id)
        entries.append((-align, size, var.name, align, v))
    entries.sort(key=lambda e: (e[0], e[1], e[2].encode("utf-8", "surrogateescape")))
    offsets: dict[int, int] = {}
    off = 0
    for _neg_align, size, _name, align, v in entries:
        off = (off + align - 1) // align * align
        offsets[id(v)] = off
        off += size
    vars_ = [VarSecinfo(v.type_id, offsets[id(v)], v.size) for v in sec.vars]
    for v in vars_:
        # libbpf marks kconfig externs as allocated globals once it has placed them.
        _replace_var(types, btf, v.type_id,
                     lambda var: dataclasses.replace(var, linkage=int(Linkage.GLOBAL)))
    return _sorted(sec, off, vars_)
