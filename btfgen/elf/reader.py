"""Read a ``.bpf.o`` (with pyelftools) or a raw BTF file into a :class:`BpfObject`.

Every problem with the input -- unreadable file, not ELF, not EM_BPF, no
``.BTF``, truncation, malformed BTF or ``.BTF.ext``, broken map definitions --
is raised as :class:`ObjectError` or :class:`BtfError` whose ``path`` names the
file at fault (which may be the ``--base`` file).
"""

from __future__ import annotations

import os
import stat
import struct
from typing import TYPE_CHECKING

from btfgen.btf_model import Btf, Datasec, Var
from btfgen.btf_parse import parse_btf, parse_header
from btfgen.elf.model import BpfObject, DataSection, GlobalVar, Program
from btfgen.elf.sections import KCONFIG_SEC, classify_section
from btfgen.errors import BtfError, BtfgenError, ObjectError, quote_name

if TYPE_CHECKING:
    from btfgen.elf.image import ElfImage

# The ELF side (pyelftools and the modules built on it) is imported only when the
# input is ELF: raw BTF such as vmlinux is dumped without paying for it.

EM_BPF = 247
#: Largest .bss/.kconfig section whose zeros btfgen materializes (256 MiB; the
#: kernel refuses far smaller map values).
MAX_ZERO_SECTION = 1 << 28
_ELF_MAGIC = b"\x7fELF"
_BTF_MAGICS = (b"\x9f\xeb", b"\xeb\x9f")


def read_input(path: str, base: Btf | None = None) -> BpfObject:
    """Read an ELF BPF object or a raw BTF blob (e.g. /sys/kernel/btf/vmlinux).

    ``base`` is the base BTF when the input is split BTF (a kernel module's).
    """
    data = _read_file(path)
    try:
        if data[:4] == _ELF_MAGIC:
            return read_object_bytes(path, data, base)
        btf = _parse_raw(data, base)
        return BpfObject(path=path, sha256=_sha256(data), btf=btf,
                         data=data, is_elf=False, byteorder=btf.byteorder)
    except BtfgenError as e:
        _blame(e, path)
        raise


def read_btf(path: str, base_path: str | None = None) -> Btf:
    """Just the BTF of an object or raw BTF file, as the file has it (no fix-ups),
    split on ``base_path``'s BTF if given."""
    base = read_btf(base_path) if base_path else None
    data = _read_file(path)
    try:
        if data[:4] == _ELF_MAGIC:
            from btfgen.elf.image import load_elf

            return _elf_btf(load_elf(data), base)
        return _parse_raw(data, base)
    except BtfgenError as e:
        _blame(e, path)
        raise


def read_object_bytes(path: str, data: bytes, base: Btf | None = None) -> BpfObject:
    """Read the ELF image ``data`` (named ``path`` in errors) into the object model."""
    try:
        return _read_object(path, data, base)
    except BtfgenError as e:
        _blame(e, path)
        raise
    except RecursionError:
        raise _blame(ObjectError("types nested too deeply"), path) from None


def _sha256(data: bytes) -> str:
    import hashlib  # its OpenSSL takes ~4 ms to load, which a dump does not need

    return hashlib.sha256(data).hexdigest()


def _blame(e: BtfgenError, path: str) -> BtfgenError:
    if e.path is None:
        e.path = path
    return e


def _read_file(path: str) -> bytes:
    data = read_input_bytes(path)
    if not data:
        raise _blame(ObjectError("empty file"), path)
    return data


#: Largest input read (vmlinux BTF is ~6 MB, a large object tens of MB).
MAX_INPUT = 1 << 30


def read_input_bytes(path: str, limit: int = MAX_INPUT) -> bytes:
    """The bytes of the input file ``path``: a regular file of at most ``limit``
    bytes (sysfs files such as /sys/kernel/btf/vmlinux are regular); anything
    else -- a character device such as /dev/zero, a FIFO -- cannot be sized and
    is refused rather than read forever."""
    try:
        st = os.stat(path)  # before open(): opening a FIFO blocks
    except OSError as e:
        raise _blame(ObjectError(f"cannot read: {e.strerror or e}"), path) from None
    if stat.S_ISDIR(st.st_mode):
        raise _blame(ObjectError("cannot read: Is a directory"), path)
    if not stat.S_ISREG(st.st_mode):
        raise _blame(ObjectError(f"not a regular file ({_kind(st.st_mode)}): cannot be sized;"
                                 " copy it to a file first"), path)
    if st.st_size > limit:
        raise _blame(ObjectError(f"too large ({st.st_size} bytes, at most {limit})"), path)
    try:
        with open(path, "rb") as f:
            # as much as stat says (read(n) allocates n bytes first), then the
            # rest in chunks: the file grew, or stat does not tell (procfs)
            parts = [f.read(st.st_size + 1)]
            got = len(parts[0])
            while got <= limit and (chunk := f.read(1 << 20)):
                parts.append(chunk)
                got += len(chunk)
    except OSError as e:
        raise _blame(ObjectError(f"cannot read: {e.strerror or e}"), path) from None
    if got > limit:
        raise _blame(ObjectError(f"too large (more than {limit} bytes)"), path)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket")):
        if test(mode):
            return name
    return "special file"


def _parse_raw(data: bytes, base: Btf | None) -> Btf:
    if data[:2] not in _BTF_MAGICS:
        raise ObjectError(
            f"not an ELF file or raw BTF (bad magic {data[:4].hex(' ')})"
        )
    try:
        return parse_btf(data, base)
    except BtfError as e:
        if base is None:
            _explain_split(data, e)
        raise


def _explain_split(data: bytes, e: BtfError) -> None:
    """Say "split BTF" when a blob that failed to parse alone looks like one:
    its string section does not start with the empty string (it continues the
    base's), or it refers to type ids past its own (they may be the base's)."""
    try:
        hdr, _ = parse_header(data)
    except BtfError:
        return
    start = hdr.hdr_len + hdr.str_off
    if hdr.str_len and data[start] != 0:
        raise BtfError(
            "split BTF (its type ids and strings continue a base BTF's): pass"
            " --base BASE, e.g. --base /sys/kernel/btf/vmlinux"
        ) from None
    if "out of range" in str(e):
        e.args = (f"{e} (if this is split BTF, pass --base BASE)",)


def _elf_btf(elf: ElfImage, base: Btf | None) -> Btf:
    sec = elf.section(".BTF")
    if sec is None:
        raise ObjectError("no .BTF section: compile the program with `clang -g`")
    if sec.type == "SHT_NOBITS":
        raise ObjectError(".BTF section has no data")
    try:
        return parse_btf(sec.data, base)
    except BtfError as e:
        raise BtfError(f".BTF: {e}") from None


def _read_object(path: str, data: bytes, base: Btf | None) -> BpfObject:
    from btfgen.btf_ext import parse_btf_ext
    from btfgen.elf.datasec import fixup_datasecs
    from btfgen.elf.image import load_elf
    from btfgen.elf.maps import btf_maps, legacy_maps, struct_ops_maps

    elf = load_elf(data)
    raw = _elf_btf(elf, base)
    btf = fixup_datasecs(raw, elf)
    obj = BpfObject(path=path, sha256=_sha256(data), btf=btf, raw_btf=raw,
                    data=data, is_elf=True, byteorder=elf.byteorder, elf=elf)
    ext = elf.section(".BTF.ext")
    if ext is not None:
        obj.btf_ext = ext.data
        obj.btf_ext_info = parse_btf_ext(ext.data, raw, elf.byteorder)
    obj.programs = _programs(elf)
    maps_sec = elf.section(".maps")
    if maps_sec is not None and maps_sec.size and not _has_datasec(btf, ".maps"):
        raise ObjectError("section .maps has no DATASEC in .BTF (compile with `clang -g`)")
    obj.maps = legacy_maps(elf, btf) + btf_maps(btf) + struct_ops_maps(btf)
    obj.sections = _data_sections(elf, btf)
    obj.license = _license(elf)
    obj.kern_version = _kern_version(elf)
    return obj


def _has_datasec(btf: Btf, name: str) -> bool:
    return any(isinstance(t, Datasec) and t.name == name for t in btf.types)


def _programs(elf: ElfImage) -> list[Program]:
    """Global functions of executable sections other than ``.text`` (whose
    functions are subprograms), in section and then address order."""
    progs = []
    for sec in elf.sections:
        if not sec.executable or sec.type != "SHT_PROGBITS" or not sec.size:
            continue
        if sec.name == ".text":
            continue
        kind = classify_section(sec.name)
        funcs = sorted((s for s in elf.symbols_in(sec.index)
                        if s.type == "STT_FUNC" and s.bind in ("STB_GLOBAL", "STB_WEAK")),
                       key=lambda s: s.value)
        for sym in funcs:
            progs.append(Program(
                name=sym.name, section=sec.name, attach_kind=kind.attach_kind,
                attach_target=kind.attach_target, size=sym.size, prog_type=kind.prog_type,
                sleepable=kind.sleepable,
            ))
    return progs


def data_section_kind(name: str) -> str | None:
    """"data", "rodata", "bss" or "kconfig" for a global data section's name
    (libbpf's rules), None for any other section."""
    if name in (".data", ".rodata"):
        return name[1:]
    if name.startswith(".data."):
        return "data"
    if name.startswith(".rodata."):
        return "rodata"
    if name == ".bss":
        return "bss"
    if name == KCONFIG_SEC:
        return "kconfig"
    return None


def _data_sections(elf: ElfImage, btf: Btf) -> list[DataSection]:
    sections = []
    for t in btf.types:
        if not isinstance(t, Datasec):
            continue
        kind = data_section_kind(t.name)
        if kind is None:
            continue
        elf_sec = elf.section(t.name)
        if kind == "kconfig" or elf_sec is None or elf_sec.type == "SHT_NOBITS":
            if kind != "kconfig" and elf_sec is None:
                continue  # a DATASEC with no section: nothing libbpf would map
            if t.size > MAX_ZERO_SECTION:  # a size that lies must not allocate gigabytes
                raise ObjectError(f"section {quote_name(t.name)}: DATASEC size {t.size}"
                                  f" is too large (btfgen accepts up to {MAX_ZERO_SECTION})")
            initial = bytes(t.size)
        else:
            initial = elf_sec.data
        ds = DataSection(name=t.name, size=t.size, datasec_type_id=t.id,
                         readonly=kind in ("rodata", "kconfig"), initial=initial)
        for vsi in t.vars:
            var = btf.type(vsi.type_id)
            if isinstance(var, Var):
                ds.variables.append(GlobalVar(name=var.name, type_id=var.type_id,
                                              offset=vsi.offset, size=vsi.size,
                                              linkage=var.linkage, var_id=var.id))
        sections.append(ds)
    return sections


def _license(elf: ElfImage) -> str:
    sec = elf.section("license")
    if sec is None:
        return ""
    return sec.data.split(b"\0", 1)[0].decode("utf-8", "replace")


def _kern_version(elf: ElfImage) -> int:
    sec = elf.section("version")
    if sec is None or len(sec.data) != 4:
        return 0
    order = "<" if elf.byteorder == "little" else ">"
    return int(struct.unpack(order + "I", sec.data)[0])


__all__ = ["read_input", "read_object_bytes", "read_btf", "data_section_kind", "BtfError",
           "ObjectError"]
