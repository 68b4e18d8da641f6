"""Read a ``.bpf.o`` (with pyelftools) or a raw BTF file into a :class:`BpfObject`."""

from __future__ import annotations

import hashlib

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
import io

from btfgen.bpf_object import BpfObject
from btfgen.btf_model import Btf
from btfgen.btf_parse import parse_btf
from btfgen.errors import BtfError, ObjectError

EM_BPF = 247


def read_input(path: str, base: Btf | None = None) -> BpfObject:
    """Read an ELF BPF object or a raw BTF blob (e.g. /sys/kernel/btf/vmlinux)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ObjectError(f"cannot read: {e.strerror}") from None
    if data[:4] == b"\x7fELF":
        return read_object_bytes(path, data)
    if data[:2] in (b"\x9f\xeb", b"\xeb\x9f"):
        btf = parse_btf(data, base)
        return BpfObject(path=path, sha256=hashlib.sha256(data).hexdigest(), btf=btf,
                         data=data, is_elf=False, byteorder=btf.byteorder)
    raise ObjectError("not an ELF file or raw BTF (bad magic)")


def read_object_bytes(path: str, data: bytes) -> BpfObject:
    """Read the ELF image ``data`` (named ``path`` in messages)."""
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] not in ("EM_BPF", EM_BPF):
            raise ObjectError(f"ELF machine is {elf['e_machine']}, not EM_BPF (247)")
        sec = elf.get_section_by_name(".BTF")
        if sec is None:
            raise ObjectError("no .BTF section (compile with clang -g)")
        btf = parse_btf(sec.data())
    except ELFError as e:
        raise ObjectError(f"malformed ELF: {e}") from None
    return BpfObject(path=path, sha256=hashlib.sha256(data).hexdigest(), btf=btf, data=data,
                     byteorder="little" if elf.little_endian else "big")


def read_btf(path: str, base_path: str | None = None) -> Btf:
    """Just the BTF of an object or raw BTF file (split on ``base_path`` if given)."""
    base = read_input(base_path).btf if base_path else None
    return read_input(path, base).btf


__all__ = ["read_input", "read_object_bytes", "read_btf", "BtfError"]
