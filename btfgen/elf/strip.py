"""An ELF BPF object without its DWARF, for embedding in a generated module.

DWARF (``.debug_*`` and their ``.rel.debug_*`` relocations) is most of a
``clang -g`` object -- vmlinux.h alone brings megabytes -- and libbpf ignores it
(``ignore_elf_section``).  The generator reads DWARF from the full object; the
module embeds this copy.  Rather than removing sections (which renumbers
sections and symbols and so rewrites every relocation), the DWARF sections are
emptied: their headers stay, with size 0, and the other sections' bytes are
packed together.  The result is what ``llvm-strip -g`` gives, give or take a
few hundred bytes of section headers, and needs no tool.
"""

from __future__ import annotations

import struct

__all__ = ["strip_debug", "is_debug_section"]

_EHDR = "16sHHIQQQIHHHHHH"  # Elf64_Ehdr after e_ident's 16 bytes are a string
_SHDR = "IIQQQQIIQQ"  # Elf64_Shdr
_SHDR_SIZE = 64
_SHT_NOBITS = 8


def is_debug_section(name: str) -> bool:
    """DWARF and its relocations: what ``llvm-strip -g`` drops."""
    for prefix in (".rel", ".rela", ""):
        if name.startswith(prefix + ".debug_"):
            return True
    return False


def strip_debug(data: bytes) -> bytes:
    """``data`` (a 64-bit ELF relocatable object) with its DWARF sections
    emptied; ``data`` itself when it has none (or is not laid out as expected:
    the object then goes in whole rather than damaged)."""
    if data[:5] not in (b"\x7fELF\x02",) or data[5] not in (1, 2):
        return data
    e = "<" if data[5] == 1 else ">"
    try:
        ehdr = list(struct.unpack_from(e + _EHDR, data))
        shoff, shentsize, shnum, shstrndx = ehdr[6], ehdr[11], ehdr[12], ehdr[13]
        if shentsize != _SHDR_SIZE or not shnum or ehdr[9]:  # no program headers in a .o
            return data
        shdrs = [list(struct.unpack_from(e + _SHDR, data, shoff + i * _SHDR_SIZE))
                 for i in range(shnum)]
        strtab = shdrs[shstrndx]
        names = data[strtab[4]:strtab[4] + strtab[5]]

        def name_of(sh: list[int]) -> str:
            end = names.index(b"\0", sh[0])
            return names[sh[0]:end].decode("utf-8", "replace")

        drop = {i for i, sh in enumerate(shdrs) if i and is_debug_section(name_of(sh))}
    except (struct.error, ValueError, IndexError):
        return data
    if not drop:
        return data
    out = bytearray(data[:64])
    for i in sorted(range(1, shnum), key=lambda i: shdrs[i][4]):
        sh = shdrs[i]
        if i in drop:
            sh[5] = 0
        align = max(1, sh[8])
        if sh[1] == _SHT_NOBITS or i in drop:
            sh[4] = len(out)
            continue
        out += bytes(-len(out) % align)
        start = sh[4]
        sh[4] = len(out)
        out += data[start:start + sh[5]]
    out += bytes(-len(out) % 8)
    ehdr[6] = len(out)
    out[16:64] = struct.pack(e + _EHDR, *ehdr)[16:]
    for sh in shdrs:
        out += struct.pack(e + _SHDR, *sh)
    return bytes(out)
