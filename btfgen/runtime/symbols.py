"""Kernel and user-space symbols for stack traces, and folded stacks for flame graphs.

::

    ksyms = kernel_symbols()                  # /proc/kallsyms, loaded once
    ksyms.resolve(0xffffffff81234567)         # Symbol("do_sys_openat2", 0x17, None)
    usyms = UserSymbols(pid)                  # the process's mappings, read now
    usyms.resolve(ip)                         # Symbol("main", 0x1c, "/usr/bin/app")
    frames = symbolize(ips, pid)              # kernel or user by address
    print(folded(frames, comm="app", count=3))  # "app;main;f;g 3"

Lookups are a bisection over sorted address arrays: after the first load,
100,000 resolves take a small fraction of a second (``benchmarks/bench_symbols.py``).
ELF symbol tables (``.symtab`` and ``.dynsym``, via pyelftools) are cached by
build id, so many processes of one program read its binary once.  Nothing that
cannot be resolved raises: it is ``[unknown]`` (the process may have exited).
"""

from __future__ import annotations

import os
import re
import struct
import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

#: Name given to addresses nothing covers (as bcc and perf print them).
UNKNOWN = "[unknown]"
#: Addresses at or above this are kernel addresses (x86-64 and arm64 canonical halves).
KERNEL_START = 1 << 63


class Symbol(NamedTuple):
    """A resolved address: function name, offset into it, module (kernel module
    name, or the path of the mapped file for user space; None for vmlinux)."""

    name: str
    offset: int = 0
    module: str | None = None

    def format(self, *, offset: bool = False, module: bool = False) -> str:
        """``name``, ``name+0x1c`` and/or ``name [module]`` as asked."""
        text = self.name
        if offset and self.name != UNKNOWN:
            text += f"+{self.offset:#x}"
        if module and self.module:
            text += f" [{os.path.basename(self.module)}]"
        return text

    def __str__(self) -> str:
        return self.name


UNKNOWN_SYMBOL = Symbol(UNKNOWN)


class KernelSymbols:
    """The kernel's symbols from ``/proc/kallsyms`` (vmlinux and loaded modules).

    Needs root (or ``kptr_restrict`` 0): unprivileged, every address reads as 0,
    which is reported as an error rather than resolving everything wrongly.
    """

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        with open(path, "rb") as f:
            data = f.read()
        rows = sorted((int(a, 16), n, m) for a, n, m in _KALLSYMS_TEXT.findall(data)
                      if int(a, 16))
        if not rows:
            raise PermissionError(f"{path}: no symbol addresses visible (needs root, or "
                                  "kernel.kptr_restrict=0)")
        self._addrs = [r[0] for r in rows]
        self._names = [r[1].decode(errors="replace") for r in rows]
        self._modules = [r[2].decode(errors="replace") if r[2] else None for r in rows]

    def __len__(self) -> int:
        return len(self._addrs)

    def resolve(self, addr: int) -> Symbol:
        """The symbol covering ``addr`` (the nearest one below it), or ``[unknown]``."""
        i = bisect_right(self._addrs, addr) - 1
        if i < 0:
            return UNKNOWN_SYMBOL
        return Symbol(self._names[i], addr - self._addrs[i], self._modules[i])

    def address(self, name: str) -> int | None:
        """The address of the (first) symbol called ``name``, or None."""
        try:
            return self._addrs[self._names.index(name)]
        except ValueError:
            return None


#: A code line of kallsyms (text and weak symbols, global or local): address, name,
#: and the module for symbols of loaded modules.
_KALLSYMS_TEXT = re.compile(rb"^([0-9a-f]+) [tTwW] ([^\t\n]+)(?:\t\[([^\]\n]+)\])?$", re.M)

_kernel: KernelSymbols | None = None
_kernel_lock = threading.Lock()


def kernel_symbols() -> KernelSymbols:
    """The process-wide :class:`KernelSymbols`, loaded on first use."""
    global _kernel
    with _kernel_lock:
        if _kernel is None:
            _kernel = KernelSymbols()
        return _kernel


# -- user space ---------------------------------------------------------------------


class ElfSymbols:
    """Function symbols of one ELF file, and how file offsets map to its addresses."""

    def __init__(self, path: str) -> None:
        from elftools.elf.elffile import ELFFile

        self.path = path
        self.build_id: str | None = None
        #: (p_offset, p_filesz, p_vaddr) of each PT_LOAD segment.
        self.segments: list[tuple[int, int, int]] = []
        funcs: dict[int, tuple[int, str]] = {}
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                for seg in elf.iter_segments():
                    if seg["p_type"] == "PT_LOAD":
                        self.segments.append((seg["p_offset"], seg["p_filesz"], seg["p_vaddr"]))
                for section in elf.iter_sections():
                    sec: Any = section  # NoteSection / SymbolTableSection
                    if sec["sh_type"] == "SHT_NOTE" and sec.name == ".note.gnu.build-id":
                        for note in sec.iter_notes():
                            if note["n_type"] == "NT_GNU_BUILD_ID":
                                self.build_id = str(note["n_desc"])
                    if sec["sh_type"] in ("SHT_SYMTAB", "SHT_DYNSYM"):
                        _add_functions(elf, sec, funcs)
        except Exception:
            # Unreadable, not ELF, or corrupt: pyelftools raises ELFError, construct's
            # ArrayError, struct.error, OverflowError, MemoryError (a garbage size)...
            # on hostile headers.  What was read stays, the rest is [unknown].
            pass
        starts = sorted(funcs)
        self._starts = starts
        self._ends = [s + funcs[s][0] for s in starts]
        self._names = [funcs[s][1] for s in starts]

    def __len__(self) -> int:
        return len(self._starts)

    def vaddr(self, file_offset: int) -> int | None:
        """The ELF virtual address loaded from ``file_offset``, None if no segment has it."""
        for off, size, vaddr in self.segments:
            if off <= file_offset < off + size:
                return file_offset - off + vaddr
        return None

    def resolve(self, vaddr: int) -> tuple[str, int] | None:
        """(name, offset) of the function containing ELF address ``vaddr``."""
        i = bisect_right(self._starts, vaddr) - 1
        if i < 0:
            return None
        start = self._starts[i]
        if vaddr >= self._ends[i] and self._ends[i] != start:
            return None
        return self._names[i], vaddr - start


#: st_info types of functions: STT_FUNC, STT_GNU_IFUNC.
_FUNC_TYPES = (2, 10)


def _add_functions(elf: Any, sec: Any, funcs: dict[int, tuple[int, str]]) -> None:
    """Function symbols of one symbol table into ``funcs`` (address -> (size, name);
    the largest size wins for aliases).  64-bit tables are unpacked in one pass
    (pyelftools' per-symbol objects cost ~10x more on a libpython-sized table)."""
    if not elf.elfclass == 64 or sec["sh_entsize"] != 24:
        for sym in sec.iter_symbols():
            if sym["st_info"]["type"] in ("STT_FUNC", "STT_GNU_IFUNC", "STT_LOOS"):  # LOOS = IFUNC
                _add(funcs, sym["st_value"], sym["st_size"], sym.name)
        return
    strtab = elf.get_section(sec["sh_link"]).data()
    fmt = "<IBBHQQ" if elf.little_endian else ">IBBHQQ"
    data = sec.data()
    for name_off, info, _other, _shndx, value, size in struct.iter_unpack(
            fmt, data[:len(data) - len(data) % 24]):
        if info & 0xF in _FUNC_TYPES and value and name_off:
            end = strtab.find(b"\0", name_off)
            name = strtab[name_off:end if end >= 0 else None].decode("utf-8", "replace")
            _add(funcs, value, size, name)


def _add(funcs: dict[int, tuple[int, str]], value: int, size: int, name: str) -> None:
    if value and name and (value not in funcs or funcs[value][0] < size):
        funcs[value] = (size, name)


_elf_cache: dict[Any, ElfSymbols] = {}
_elf_lock = threading.Lock()


def _file_key(path: str) -> Any:
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def elf_symbols(path: str) -> ElfSymbols:
    """The :class:`ElfSymbols` of ``path``, cached by file identity and build id."""
    try:
        key = _file_key(path)
    except OSError:
        key = ("missing", path)
    with _elf_lock:
        hit = _elf_cache.get(key)
    if hit is not None:
        return hit
    syms = ElfSymbols(path)
    with _elf_lock:
        if syms.build_id is not None:
            # Another path (a container's copy, a hard link) with the same build id
            # has the same symbols: reuse the first one read.
            syms = _elf_cache.setdefault(("build-id", syms.build_id), syms)
        _elf_cache[key] = syms
    return syms


class _Mapping(NamedTuple):
    start: int
    end: int
    offset: int
    path: str
    open_path: str


class UserSymbols:
    """Symbols of one process: each executable file mapping of ``/proc/PID/maps``
    (the program, PIE or not, and its shared libraries), read when constructed.

    Files are read lazily on the first address in them, through
    ``/proc/PID/map_files`` or ``/proc/PID/root`` while the process lives (so
    deleted and containerised files work), by path after it exits.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._maps: list[_Mapping] = []
        try:
            with open(f"/proc/{pid}/maps") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []  # gone already: everything is [unknown]
        for line in lines:
            parts = line.split(None, 5)
            if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            path = parts[5].removesuffix(" (deleted)")
            self._maps.append(_Mapping(lo, hi, int(parts[2], 16), path,
                                       self._open_path(parts[0], path)))
        self._maps.sort()
        self._starts = [m.start for m in self._maps]
        self._elf: dict[str, ElfSymbols] = {}

    def _open_path(self, span: str, path: str) -> str:
        for candidate in (f"/proc/{self.pid}/map_files/{span}", f"/proc/{self.pid}/root{path}"):
            if os.path.exists(candidate):
                return candidate
        return path

    @property
    def modules(self) -> list[str]:
        """Paths of the mapped executable files."""
        return sorted({m.path for m in self._maps})

    def _symbols(self, m: _Mapping) -> ElfSymbols:
        syms = self._elf.get(m.path)
        if syms is None:
            path = m.open_path if os.path.exists(m.open_path) else m.path
            syms = self._elf[m.path] = elf_symbols(path)
        return syms

    def resolve(self, addr: int) -> Symbol:
        """The function containing ``addr``; ``Symbol("[unknown]", 0, path)`` when the
        mapping is known but the file has no symbol there."""
        i = bisect_right(self._starts, addr) - 1
        if i < 0 or addr >= self._maps[i].end:
            return UNKNOWN_SYMBOL
        m = self._maps[i]
        syms = self._symbols(m)
        vaddr = syms.vaddr(addr - m.start + m.offset)
        hit = syms.resolve(vaddr) if vaddr is not None else None
        if hit is None:
            return Symbol(UNKNOWN, 0, m.path)
        return Symbol(hit[0], hit[1], m.path)


# -- stacks -------------------------------------------------------------------------

_user_cache: dict[int, UserSymbols] = {}
#: Processes whose symbols are kept (oldest dropped first).
USER_CACHE_SIZE = 256


def user_symbols(pid: int) -> UserSymbols:
    """A cached :class:`UserSymbols` for ``pid`` (``forget(pid)`` when it exits)."""
    syms = _user_cache.get(pid)
    if syms is None:
        if len(_user_cache) >= USER_CACHE_SIZE:
            del _user_cache[next(iter(_user_cache))]
        syms = _user_cache[pid] = UserSymbols(pid)
    return syms


def forget(pid: int) -> None:
    """Drop the cached symbols of ``pid`` (it exited, or exec'd another program)."""
    _user_cache.pop(pid, None)


def symbolize(ips: Iterable[int], pid: int | None = None) -> list[Symbol]:
    """Symbols of a stack's instruction pointers (innermost first, as BPF's
    ``bpf_get_stackid`` stores them): kernel addresses from kallsyms, the rest from
    process ``pid``'s mappings (``[unknown]`` without a pid)."""
    out: list[Symbol] = []
    usyms = user_symbols(pid) if pid is not None and pid > 0 else None
    ksyms: KernelSymbols | None = None
    for ip in ips:
        if ip >= KERNEL_START:
            if ksyms is None:
                ksyms = kernel_symbols()
            out.append(ksyms.resolve(ip))
        elif usyms is not None:
            out.append(usyms.resolve(ip))
        else:
            out.append(UNKNOWN_SYMBOL)
    return out


def folded(frames: Sequence[Symbol | str], *, comm: str | None = None, count: int | None = None,
           prefix: Sequence[str] = ()) -> str:
    """One flamegraph.pl / speedscope "folded" line: ``comm;outer;...;inner count``.

    ``frames`` is innermost first (as stacks come from BPF); the line lists the
    outermost first.  ``prefix`` frames go right after ``comm`` (e.g. a user stack
    before a ``"-"`` and the kernel stack, as profile does); semicolons inside
    names become colons and line breaks spaces (names come from untrusted ELF files),
    so they cannot split a frame or a line.
    """
    names = [*([comm] if comm is not None else []), *prefix,
             *(str(f) for f in reversed(frames))]
    line = ";".join(n.replace(";", ":").replace("\n", " ").replace("\r", " ") for n in names)
    return line if count is None else f"{line} {count}"


class _HasLookup(Protocol):
    def lookup(self, key: int, default: Any = None) -> Any: ...


class StackSymbolizer:
    """``symbolize(stack_id, pid=None)`` for stack trace maps (a mixin, listed first
    or last among the bases: the map's ``lookup(stack_id)`` gives the instruction
    pointers)."""

    def symbolize(self: _HasLookup, stack_id: int, pid: int | None = None) -> list[Symbol]:
        """The frames of ``stack_id``, innermost first; ``[]`` for a negative id (the
        BPF side got -EFAULT/-EEXIST) or one the map no longer holds."""
        if stack_id < 0:
            return []
        ips = self.lookup(stack_id)
        return symbolize(ips or [], pid)


__all__ = ["UNKNOWN", "ElfSymbols", "KernelSymbols", "StackSymbolizer", "Symbol",
           "UserSymbols", "elf_symbols", "folded", "forget", "kernel_symbols", "symbolize",
           "user_symbols"]
