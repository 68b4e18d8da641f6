"""``btfgen doctor`` and ``btfgen --version``: what this installation and this machine have.

The first thing to ask a user who reports a problem: which btfgen and Python, whether
the optional compiled parts were built, which libbpf is loaded, whether the kernel has
BTF, whether tracefs is mounted and readable, what the process may do (uid,
capabilities), and which clang and bpftool a build would use.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import stat
import subprocess
import sys

from btfgen import __version__

__all__ = ["version_report", "doctor_report", "COMPILED_PARTS"]

#: The optional compiled parts (module -> what runs without it).
COMPILED_PARTS = {
    "btfgen.runtime._drain": "perf/ring buffers use libbpf's per-record callbacks",
    "btfgen.runtime._records": "records are built in Python",
    "btfgen._btf_decode": "BTF is decoded in Python (vmlinux ~4x slower)",
}

#: Capabilities that matter for BPF (bit -> name).
_CAPS = {1: "CAP_DAC_OVERRIDE", 2: "CAP_DAC_READ_SEARCH", 12: "CAP_NET_ADMIN",
         21: "CAP_SYS_ADMIN", 24: "CAP_SYS_RESOURCE", 38: "CAP_PERFMON", 39: "CAP_BPF"}

def compiled_parts() -> list[str]:
    """One line per optional compiled part: built (where) or not (and what that costs)."""
    lines = []
    for name, fallback in COMPILED_PARTS.items():
        try:
            spec = importlib.util.find_spec(name)
        except ImportError:
            spec = None
        short = name.rpartition(".")[2]
        if spec is not None and spec.origin:
            lines.append(f"{short}: built ({spec.origin})")
        else:
            lines.append(f"{short}: not built -- {fallback}; reinstall with a C compiler and"
                         " Python's headers (e.g. apt install gcc python3-dev)")
    return lines


def libbpf_line() -> str:
    """``1.1 (/usr/lib/.../libbpf.so.1.1.2)``, or why it cannot be used."""
    from btfgen.runtime._libbpf import lib, version
    from btfgen.runtime.errors import LibbpfMissingError

    try:
        lib()
    except LibbpfMissingError as e:
        return f"unusable -- {e}"
    chosen = os.environ.get("BTFGEN_LIBBPF")
    path = os.path.realpath(chosen) if chosen and "/" in chosen else _mapped_path("libbpf")
    return f"{version().lstrip('v')} ({path or 'path unknown'})"


def _mapped_path(stem: str) -> str | None:
    """The file of the first shared object named ``stem*.so*`` this process has mapped."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                path = line.split(maxsplit=5)[5].strip() if line.count(" ") >= 5 else ""
                if os.path.basename(path).startswith(stem) and ".so" in path:
                    return path
    except (OSError, IndexError):
        return None
    return None


def kernel_btf_line() -> str:
    """Whether the running kernel exposes its BTF (CO-RE and vmlinux.h need it)."""
    from btfgen.project.clang import VMLINUX_BTF

    try:
        size = os.path.getsize(VMLINUX_BTF)
    except OSError as e:
        return (f"missing ({VMLINUX_BTF}: {os.strerror(e.errno or 0)}) -- the kernel needs "
                "CONFIG_DEBUG_INFO_BTF=y; CO-RE programs and vmlinux_h = true will fail")
    return f"present ({VMLINUX_BTF}, {size} bytes)"


def tracefs_line() -> str:
    """Where tracefs is mounted and whether this process can read it."""
    from btfgen.runtime.system import TRACEFS, tracefs_available, tracefs_mounts

    mounts = tracefs_mounts()
    if not mounts:
        return (f"not mounted -- attaching tracepoints, uprobes or USDT mounts it at {TRACEFS}"
                " when run as root")
    where = TRACEFS if TRACEFS in mounts else mounts[0]
    mode = stat.S_IMODE(os.stat(where).st_mode)
    if tracefs_available():
        return f"mounted at {where} (mode {mode:04o}), readable"
    return (f"mounted at {where} (mode {mode:04o}), not readable by uid {os.geteuid()} --"
            " attaching tracepoints, uprobes and USDT probes will fail")


def effective_capabilities(status: str = "/proc/self/status") -> set[str]:
    """The BPF-related capabilities in this process's effective set."""
    try:
        with open(status, encoding="ascii", errors="replace") as f:
            line = next((ln for ln in f if ln.startswith("CapEff:")), "CapEff: 0")
    except OSError:
        return set()
    bits = int(line.split(":", 1)[1].strip() or "0", 16)
    return {name for bit, name in _CAPS.items() if bits >> bit & 1}


def capabilities_line() -> str:
    """uid, the capabilities that matter, and what they allow."""
    caps = effective_capabilities()
    order = [name for name in _CAPS.values() if name in caps]
    can_load = "CAP_BPF" in caps or "CAP_SYS_ADMIN" in caps
    can_trace = can_load and ("CAP_PERFMON" in caps or "CAP_SYS_ADMIN" in caps)
    verdict = ("loads and attaches tracing programs" if can_trace
               else "loads BPF but cannot attach tracing programs (no CAP_PERFMON)" if can_load
               else "cannot load BPF programs (needs root, or CAP_BPF + CAP_PERFMON)")
    return f"uid {os.geteuid()}, effective {' '.join(order) or 'none'}: {verdict}"


def tool_line(label: str) -> str:
    """The tool's path and the first line of its ``--version``, or how to get it."""
    from btfgen.project.clang import TOOLS, find_tool

    path, wanted = find_tool(label)
    if path is None:
        return f"not found ({wanted}; set {TOOLS[label][0]} to use another)"
    try:
        r = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10,
                           errors="replace")
        # the first line with a version number ("Debian LLVM version 14.0.6", not the name)
        lines = [ln.strip() for ln in r.stdout.splitlines() if ln.strip()]
        first = next((ln for ln in lines if any(c.isdigit() for c in ln)), lines[0] if lines
                     else f"--version exited {r.returncode}")
    except (OSError, subprocess.TimeoutExpired) as e:
        first = f"--version failed: {e}"
    return f"{first} ({path})"


def _installed() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    return f"installed in {here}, Python {platform.python_version()} ({sys.executable})"


def version_report() -> str:
    """``btfgen --version``: ``btfgen X.Y.Z`` (the line scripts read), then where it is
    installed, its compiled parts and the libbpf in use."""
    lines = [f"btfgen {__version__}", f"  {_installed()}",
             *(f"  {line}" for line in compiled_parts()), f"  libbpf: {libbpf_line()}"]
    return "\n".join(lines) + "\n"


def doctor_report() -> str:
    """``btfgen doctor``: everything of :func:`version_report`, and the machine."""
    from btfgen.project.clang import TOOLS

    rows = [("btfgen", f"{__version__}, {_installed()}")]
    rows += [("compiled", line) for line in compiled_parts()]
    rows += [("libbpf", libbpf_line()),
             ("kernel", f"{platform.release()} ({platform.machine()})"),
             ("kernel BTF", kernel_btf_line()),
             ("tracefs", tracefs_line()),
             ("privileges", capabilities_line())]
    rows += [(label, tool_line(label)) for label in TOOLS]
    width = max(len(label) for label, _ in rows)
    return "".join(f"{label + ':':<{width + 1}} {text}\n" for label, text in rows)
