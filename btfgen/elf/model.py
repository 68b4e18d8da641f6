"""The model of a compiled BPF object: what ``btfgen info`` shows and what the
generator selects types from.

Produced by :func:`btfgen.elf.reader.read_object_bytes` (ELF ``.bpf.o``) or
:func:`btfgen.elf.reader.read_input` (ELF or raw BTF).  Sizes and offsets of
DATASEC variables are already fixed up from the ELF section sizes and symbols,
as libbpf does when it opens an object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from btfgen.btf_ext import BtfExtInfo
from btfgen.btf_model import Btf

if TYPE_CHECKING:
    from btfgen.elf.image import ElfImage


@dataclass
class Program:
    """A BPF program: a function in an executable ELF section."""

    name: str
    section: str
    #: libbpf's notion of the program type/attach kind from the section name
    #: prefix, e.g. "tracepoint", "kprobe", "xdp", "tc", "raw_tracepoint".
    attach_kind: str
    #: The part of the section name after the prefix (the attach target), or "".
    attach_target: str = ""
    #: Size of the program's code in bytes.
    size: int = 0
    #: BPF_PROG_TYPE_* without the prefix ("KPROBE", "TRACEPOINT"), "UNSPEC" if unknown.
    prog_type: str = "UNSPEC"
    #: Declared sleepable by its section (``fentry.s/...``, ``uprobe.s/...``).
    sleepable: bool = False


@dataclass
class MapDef:
    """A map definition from BTF ``.maps`` or the legacy ``maps`` section."""

    name: str
    #: BPF_MAP_TYPE_* number (0 if unknown) and its name without the prefix ("HASH").
    map_type: int
    map_type_name: str
    key_size: int = 0
    value_size: int = 0
    #: BTF type ids of key and value (0 when only sizes are known).
    key_type_id: int = 0
    value_type_id: int = 0
    max_entries: int = 0
    map_flags: int = 0
    pinning: int = 0
    numa_node: int = 0
    map_extra: int = 0
    #: The inner map's definition for map-in-map (``__array(values, ...)``).
    inner: MapDef | None = None
    #: "btf" for BTF-defined maps, "legacy" for the ``maps`` section,
    #: "struct_ops" for variables of ``.struct_ops``/``.struct_ops.link``.
    source: str = "btf"


@dataclass
class GlobalVar:
    """A global variable of a data section, with its fixed-up place."""

    name: str
    #: The variable's C type (what its VAR refers to).
    type_id: int
    offset: int
    size: int
    #: VAR linkage (0 static, 1 global, 2 extern); after fix-up, as libbpf has it.
    linkage: int = 1
    #: The id of the VAR itself.
    var_id: int = 0


@dataclass
class DataSection:
    """A global data section: ``.data``, ``.rodata``, ``.bss``, ``.kconfig``,
    ``.data.*`` or ``.rodata.*``."""

    name: str
    size: int
    datasec_type_id: int
    variables: list[GlobalVar] = field(default_factory=list)
    readonly: bool = False
    #: Initial contents (zeros for .bss/.kconfig).
    initial: bytes = b""


@dataclass
class BpfObject:
    """Everything btfgen knows about one input file."""

    path: str
    #: sha256 hex digest of the file's bytes.
    sha256: str
    #: The BTF with DATASEC sizes/offsets fixed up (as libbpf has it after open).
    btf: Btf
    #: Raw ``.BTF.ext`` bytes (empty if absent or for raw BTF input).
    btf_ext: bytes = b""
    #: The BTF exactly as the file has it (what ``bpftool btf dump file`` shows);
    #: None means the same as ``btf`` (raw BTF input).
    raw_btf: Btf | None = None
    #: Summary of the validated ``.BTF.ext`` (None if absent).
    btf_ext_info: BtfExtInfo | None = None
    #: The file's bytes (embedded into skeletons).
    data: bytes = b""
    is_elf: bool = True
    #: "little" or "big" (ELF data encoding, or the BTF magic for raw BTF).
    byteorder: str = "little"
    programs: list[Program] = field(default_factory=list)
    #: BTF-defined, legacy and struct_ops maps in libbpf's order; the internal
    #: maps of global data are in ``sections``.
    maps: list[MapDef] = field(default_factory=list)
    sections: list[DataSection] = field(default_factory=list)
    license: str = ""
    #: The ``version`` section's value (0 if absent).
    kern_version: int = 0
    #: The parsed ELF image (None for raw BTF), kept so later analyses
    #: (bytecode, record types) need not parse the file again.
    elf: ElfImage | None = field(default=None, repr=False, compare=False)

    @property
    def file_btf(self) -> Btf:
        """The BTF as stored in the file, before any fix-up."""
        return self.raw_btf if self.raw_btf is not None else self.btf
