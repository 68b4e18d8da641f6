"""Which types a module gets.

Roots, in this order (it decides names, so it is fixed):

1. every map's key and value type (maps in object order; map-in-map inner
   definitions too), anonymous ones named ``<map>_key``/``<map>_value``;
2. every global variable of every data section (``.data``, ``.rodata``,
   ``.bss``, ``.data.*``, ``.rodata.*``, ``.kconfig``);
3. the value types of ring/perf buffer maps when BTF gives them (covered by 1);
4. the ``--type`` arguments.

Everything reachable by value from a root is emitted; pointers are plain
ints, so kernel types that only pointers or CO-RE relocations reference
(``task_struct`` ...) are not emitted unless asked for with ``--type``.
"""

from __future__ import annotations

from dataclasses import dataclass

from btfgen.btf_c import KEYWORD_KINDS, find_c_type
from btfgen.btf_model import Btf, BtfType, Kind
from btfgen.elf.model import BpfObject, MapDef
from btfgen.gen.model import GenerateError


@dataclass(frozen=True)
class Root:
    """A type to emit and the place that names it if it is anonymous."""

    type_id: int
    place: str


def _map_roots(m: MapDef) -> list[Root]:
    roots = []
    if m.key_type_id:
        roots.append(Root(m.key_type_id, f"{m.name}_key"))
    if m.value_type_id:
        roots.append(Root(m.value_type_id, f"{m.name}_value"))
    if m.inner is not None:
        roots += _map_roots(m.inner)
    return roots


def object_roots(obj: BpfObject) -> list[Root]:
    """Roots 1-3 of the module docstring."""
    roots: list[Root] = []
    for m in obj.maps:
        roots += _map_roots(m)
    for sec in obj.sections:
        for v in sec.variables:
            roots.append(Root(v.type_id, v.name))
    return roots


def find_type(btf: Btf, spec: str) -> BtfType:
    """The type ``--type`` names (see :func:`btfgen.btf_c.find_c_type`)."""
    found = find_c_type(btf, spec)
    if found is not None:
        return found
    head, _, name = spec.partition(" ")
    if head in KEYWORD_KINDS:
        fwd = btf.find(name, Kind.FWD)
        what = "only a forward declaration" if fwd else "no such type"
        raise GenerateError(f"--type {spec!r}: {what} in the BTF")
    raise GenerateError(f"--type {spec!r}: no such type in the BTF (give 'struct NAME',"
                        " 'union NAME', 'enum NAME' or a typedef name)")


def select_roots(obj: BpfObject, extra: list[str], btf: Btf | None = None) -> list[Root]:
    """All roots for ``obj`` plus the ``--type`` specs in ``extra`` (looked up in
    ``btf``, by default the object's), the latter last."""
    roots = object_roots(obj)
    for spec in extra:
        t = find_type(btf or obj.btf, spec)
        roots.append(Root(t.id, spec))
    return roots
