"""Compiling BPF C with clang, the way libbpf projects do.

Default command line::

    clang -g -O2 -target bpf -D__TARGET_ARCH_<arch> -I<vmlinux.h dir> -I<source dir>
          -I<libbpf headers> -I/usr/include/<multiarch> <cflags> -c SRC -o OBJ

The object keeps its DWARF: the generator reads record types from it and
embeds the object without it (:mod:`btfgen.elf.strip`).  ``BTFGEN_CLANG`` and
``BTFGEN_BPFTOOL`` choose the tools.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Callable, Sequence

from btfgen.errors import BtfgenError

__all__ = ["CompileError", "TOOLS", "find_tool", "target_arch", "default_cflags", "include_dirs",
           "compile_bpf",
           "write_vmlinux_h", "VMLINUX_BTF"]

VMLINUX_BTF = "/sys/kernel/btf/vmlinux"

#: ``platform.machine()`` -> the ``__TARGET_ARCH_*`` that libbpf's bpf_tracing.h expects.
_ARCHES = {
    "x86_64": "x86", "i386": "x86", "i686": "x86", "aarch64": "arm64", "arm64": "arm64",
    "ppc64le": "powerpc", "ppc64": "powerpc", "s390x": "s390", "riscv64": "riscv",
    "loongarch64": "loongarch", "mips64": "mips", "mips": "mips",
}

#: Hints for clang errors whose fix is a missing package rather than the source.
_HINTS = (
    ("'bpf/bpf_helpers.h' file not found",
     "libbpf's headers are missing -- install them (e.g. apt install libbpf-dev)"),
    ("'asm/types.h' file not found",
     "the kernel UAPI headers are missing -- install linux-libc-dev (or gcc-multilib)"),
    ("'vmlinux.h' file not found",
     "set vmlinux_h = true in [[tool.btfgen.skeletons]] to generate vmlinux.h"),
)


class CompileError(BtfgenError):
    """clang (or bpftool) failed; the message holds the tool's own output."""


def target_arch(machine: str | None = None) -> str:
    """The ``__TARGET_ARCH_`` suffix for ``machine`` (default: this machine)."""
    m = machine or platform.machine()
    return _ARCHES.get(m, re.sub(r"[^A-Za-z0-9_]", "_", m))


def default_cflags(arch: str | None = None) -> list[str]:
    """``-g -O2 -target bpf -D__TARGET_ARCH_<arch>``."""
    return ["-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{arch or target_arch()}"]


def _libbpf_includes() -> list[str]:
    if shutil.which("pkg-config") is None:
        return []
    r = subprocess.run(["pkg-config", "--cflags-only-I", "libbpf"], capture_output=True,
                       text=True)
    if r.returncode != 0:
        return []
    return [flag[2:] for flag in r.stdout.split() if flag.startswith("-I") and len(flag) > 2]


def _multiarch_include() -> list[str]:
    # -target bpf drops the host's multiarch dir, where <asm/types.h> lives.
    triplet = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
    path = f"/usr/include/{triplet}"
    return [path] if os.path.isdir(path) else []


def include_dirs(source: str, extra: Sequence[str] = ()) -> list[str]:
    """``extra`` (e.g. the vmlinux.h folder), the source's folder, libbpf's
    headers and the multiarch UAPI folder, in search order."""
    dirs = [*extra, os.path.dirname(os.path.abspath(source)), *_libbpf_includes(),
            *_multiarch_include()]
    return list(dict.fromkeys(dirs))


#: The tools a build runs: label -> (environment override, names looked up on PATH).
TOOLS = {
    "clang": ("BTFGEN_CLANG", ("clang",)),
    "bpftool": ("BTFGEN_BPFTOOL", ("bpftool",)),
}


def find_tool(label: str) -> tuple[str | None, str]:
    """``(path or None, what was looked for)`` of a :data:`TOOLS` entry."""
    env, names = TOOLS[label]
    chosen = os.environ.get(env)
    for name in ([chosen] if chosen else names):
        path = shutil.which(name)
        if path:
            return path, name
    return None, chosen or names[0]


def _tool(label: str, install: str) -> str:
    path, wanted = find_tool(label)
    if path is None:
        env = TOOLS[label][0]
        raise CompileError(f"{wanted} not found -- install {install} or set {env}=/path/to/"
                           f"{wanted}")
    return path


def _hint(stderr: str) -> str:
    hints = [fix for needle, fix in _HINTS if needle in stderr]
    return f"\nhint: {hints[0]}" if hints else ""


def compile_bpf(source: str, output: str, *, cflags: Sequence[str] = (),
                include: Sequence[str] = (),
                warnings: Callable[[str], None] | None = None) -> list[str]:
    """Compile ``source`` to ``output`` (written only on success); returns the
    clang command line.  Raises :class:`CompileError` with clang's messages;
    on success, what clang printed (its warnings) goes to ``warnings``."""
    clang = _tool("clang", "clang (e.g. apt install clang)")
    cmd = [clang, *default_cflags(), *(f"-I{d}" for d in include_dirs(source, include)),
           *cflags, "-c", source, "-o", output + ".tmp"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        if r.returncode != 0:
            raise CompileError(f"clang failed (exit {r.returncode}):\n{r.stderr.rstrip()}"
                               f"{_hint(r.stderr)}")
        if r.stderr.strip() and warnings is not None:
            warnings(r.stderr.rstrip())
        os.replace(output + ".tmp", output)
    finally:
        if os.path.exists(output + ".tmp"):
            os.unlink(output + ".tmp")
    return cmd


def write_vmlinux_h(folder: str, btf: str = VMLINUX_BTF) -> str:
    """Write ``folder/vmlinux.h`` from the running kernel's BTF with bpftool
    (all or nothing); returns its path."""
    if not os.path.exists(btf):
        raise CompileError(f"vmlinux_h = true needs {btf} (a kernel built with"
                           " CONFIG_DEBUG_INFO_BTF) -- or commit a vmlinux.h next to the source")
    bpftool = _tool("bpftool", "bpftool (e.g. apt install bpftool)")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "vmlinux.h")
    with open(path + ".tmp", "wb") as out:
        r = subprocess.run([bpftool, "btf", "dump", "file", btf, "format", "c"], stdout=out,
                           stderr=subprocess.PIPE)
    if r.returncode != 0:
        os.unlink(path + ".tmp")
        message = r.stderr.decode(errors="replace").strip()
        raise CompileError(f"bpftool btf dump file {btf} format c failed: {message}")
    os.replace(path + ".tmp", path)
    return path
