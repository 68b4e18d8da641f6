"""Load an ELF BPF object with pyelftools into plain, checked records.

pyelftools raises many exception types on damaged files (``ELFError``,
``struct.error``, ``ValueError``, ``IndexError`` ...) and reads short data past
the end of a truncated file without complaint.  This module is the one place
that talks to pyelftools: it checks the file's structure itself, copies what
the reader needs into :class:`ElfSection`/:class:`ElfSymbol` records and turns
every failure into :class:`btfgen.errors.ObjectError`.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field

from elftools.common.exceptions import ELFError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from btfgen.errors import ObjectError

EM_BPF = 247
SHF_EXECINSTR = 0x4

#: Everything pyelftools (and its bundled construct) is known to raise on garbage.
_PARSE_ERRORS = (
    ELFError, ConstructError, struct.error, ValueError, IndexError, KeyError,
    TypeError, UnicodeDecodeError, OverflowError, EOFError, AssertionError,
)


@dataclass
class ElfSection:
    """One section header and (for sections with file data) its bytes."""

    index: int
    name: str
    #: SHT_* name as pyelftools spells it ("SHT_PROGBITS", "SHT_NOBITS", ...).
    type: str
    flags: int
    size: int
    data: bytes = b""

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@dataclass
class ElfSymbol:
    """One ``.symtab`` entry."""

    name: str
    value: int
    size: int
    #: Section index, or -1 for undefined/absolute/common symbols.
    shndx: int
    bind: str  # "STB_GLOBAL", "STB_LOCAL", "STB_WEAK"
    type: str  # "STT_FUNC", "STT_OBJECT", "STT_SECTION", "STT_NOTYPE" ...
    visibility: str  # "STV_DEFAULT", "STV_HIDDEN" ...


@dataclass
class ElfImage:
    """The parts of an ELF relocatable object that btfgen needs."""

    byteorder: str
    sections: list[ElfSection] = field(default_factory=list)
    symbols: list[ElfSymbol] = field(default_factory=list)

    def section(self, name: str) -> ElfSection | None:
        """The first section called ``name``."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def symbols_in(self, shndx: int) -> list[ElfSymbol]:
        """Symbols defined in section ``shndx``, in symbol table order."""
        return [s for s in self.symbols if s.shndx == shndx]


def load_elf(data: bytes) -> ElfImage:
    """Parse ``data`` as an EM_BPF ELF object; raise ObjectError on any problem."""
    if len(data) < 16 or data[:4] != b"\x7fELF":
        raise ObjectError("not an ELF file")
    if data[4] != 2:
        raise ObjectError("not a 64-bit ELF file (BPF objects are ELF64)")
    if data[5] not in (1, 2):
        raise ObjectError(f"ELF data encoding {data[5]} is neither little nor big endian")
    order = "little" if data[5] == 1 else "big"
    _check_headers(data, order)
    try:
        return _load(data, order)
    except ObjectError:
        raise
    except _PARSE_ERRORS as e:
        raise ObjectError(f"malformed ELF: {_describe(e)}") from None
    except RecursionError:
        raise ObjectError("malformed ELF: nesting too deep") from None


def _describe(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return msg[0] if msg and msg[0] else type(e).__name__


def _check_headers(data: bytes, order: str) -> None:
    """Bounds checks pyelftools does not do: header, section table, section data."""
    e = "<" if order == "little" else ">"
    if len(data) < 64:
        raise ObjectError(f"truncated ELF: {len(data)} bytes, the ELF header needs 64")
    machine = struct.unpack_from(e + "H", data, 18)[0]
    if machine != EM_BPF:
        raise ObjectError(f"ELF machine is {machine}, not EM_BPF ({EM_BPF}): not a BPF object")
    shoff = struct.unpack_from(e + "Q", data, 40)[0]
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", data, 58)
    if shoff == 0 or shnum == 0:
        raise ObjectError("ELF file has no section headers")
    if shentsize != 64:
        raise ObjectError(f"ELF section header size {shentsize} is not 64")
    if shoff + shnum * 64 > len(data):
        raise ObjectError(
            f"truncated ELF: section headers end at {shoff + shnum * 64},"
            f" file has {len(data)} bytes"
        )
    if shstrndx >= shnum:
        raise ObjectError(f"ELF section name table index {shstrndx} out of range ({shnum})")
    for i in range(shnum):
        sh_type, _flags, _addr, sh_offset, sh_size = struct.unpack_from(
            e + "IQQQQ", data, shoff + i * 64 + 4
        )
        if sh_type in (0, 8):  # SHT_NULL, SHT_NOBITS: no file data
            continue
        if sh_offset + sh_size > len(data):
            raise ObjectError(
                f"truncated ELF: section {i} data ends at {sh_offset + sh_size},"
                f" file has {len(data)} bytes"
            )


def _cstr(table: bytes, off: int, fallback: str) -> str:
    """The NUL-terminated name at ``off`` of a string table, decoded like BTF
    names (surrogateescape), so that bytes that are not UTF-8 survive and the
    same name compares equal in ELF and BTF.  pyelftools would replace them
    with U+FFFD; its ``fallback`` is kept for offsets out of range."""
    if not 0 <= off < len(table):
        return fallback
    end = table.find(b"\0", off)
    return table[off:end if end >= 0 else len(table)].decode("utf-8", "surrogateescape")


def _load(data: bytes, order: str) -> ElfImage:
    elf = ELFFile(io.BytesIO(data))
    img = ElfImage(byteorder=order)
    symtab = None
    shstrtab = bytes(elf.get_section(elf["e_shstrndx"]).data())
    for idx, sec in enumerate(elf.iter_sections()):
        sh_type = sec["sh_type"]
        img.sections.append(ElfSection(
            index=idx,
            name=_cstr(shstrtab, int(sec["sh_name"]), sec.name),
            type=sh_type if isinstance(sh_type, str) else f"SHT_{sh_type:#x}",
            flags=int(sec["sh_flags"]),
            size=int(sec["sh_size"]),
            data=b"" if sh_type in ("SHT_NOBITS", "SHT_NULL") else bytes(sec.data()),
        ))
        if sh_type == "SHT_SYMTAB" and isinstance(sec, SymbolTableSection):
            symtab = sec
    if symtab is not None:
        strtab = bytes(symtab.stringtable.data())
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            img.symbols.append(ElfSymbol(
                name=_cstr(strtab, int(sym["st_name"]), sym.name),
                value=int(sym["st_value"]),
                size=int(sym["st_size"]),
                shndx=shndx if isinstance(shndx, int) else -1,
                bind=str(sym["st_info"]["bind"]),
                type=str(sym["st_info"]["type"]),
                visibility=str(sym["st_other"]["visibility"]),
            ))
    return img
