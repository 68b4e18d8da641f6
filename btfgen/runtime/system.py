"""Checks and set-up the kernel side needs: privileges and tracefs."""

from __future__ import annotations

import os
import re
import socket
import stat

from btfgen.runtime._libbpf import ffi, libc
from btfgen.runtime.errors import RuntimeBpfError

TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"

#: Section prefixes whose auto-attach goes through tracefs (event ids, legacy probes).
TRACEFS_PREFIXES = ("tp/", "tracepoint/", "kprobe/", "kretprobe/", "uprobe", "uretprobe",
                    "ksyscall/", "kretsyscall/", "usdt")


class TracefsError(RuntimeBpfError):
    """tracefs is not mounted (and could not be mounted), or this process cannot read it."""


def tracefs_available() -> bool:
    """True when the tracing event directory is present (and this process can see it)."""
    return any(os.path.isdir(os.path.join(d, "events")) for d in (TRACEFS, DEBUGFS_TRACING))


def tracefs_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[str]:
    """Where tracefs is mounted, as this process's mount table says."""
    found = []
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields, _, rest = line.partition(" - ")
                parts = fields.split()
                if len(parts) > 4 and rest.split(" ", 1)[0] == "tracefs":
                    found.append(_unescape_mount_path(parts[4]))
    except OSError:
        return []
    return found


def _unescape_mount_path(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040)
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _unreadable_tracefs(path: str) -> str:
    """One sentence: tracefs is mounted at ``path`` but this process cannot use it."""
    try:
        st = os.stat(path)
        how = f"mode {stat.S_IMODE(st.st_mode):04o}, owner uid {st.st_uid} gid {st.st_gid}"
    except OSError as e:
        how = os.strerror(e.errno or 0)
    return (f"tracefs is mounted at {path} but uid {os.geteuid()} cannot read it ({how}), and "
            "attaching tracepoints, uprobes and USDT probes reads it; run as root, or give this "
            f"user access (e.g. chmod 0755 {path}, or a group: chgrp GROUP {path}; "
            f"chmod 0750 {path})")


def ensure_tracefs() -> None:
    """Mount tracefs on /sys/kernel/tracing when it is missing (as libbpf needs it).

    Raises :class:`TracefsError` with one sentence when that is not possible, or when
    tracefs is mounted but this process cannot read it (its folder is mode 0700 by
    default: a non-root user with CAP_BPF + CAP_PERFMON is refused).
    """
    if tracefs_available():
        return
    # where libbpf looks; a mount elsewhere does not help it
    mounted = [m for m in (TRACEFS, DEBUGFS_TRACING) if m in tracefs_mounts()]
    if mounted:
        raise TracefsError(_unreadable_tracefs(mounted[0]))
    if os.geteuid() != 0:
        raise TracefsError(f"tracefs is not mounted at {TRACEFS} and mounting it needs root; "
                           f"run: mount -t tracefs tracefs {TRACEFS}")
    rc = libc().mount(b"tracefs", TRACEFS.encode(), b"tracefs", 0, ffi.NULL)
    if rc != 0 or not tracefs_available():
        err = os.strerror(ffi.errno) if rc != 0 else "no events directory after mounting"
        raise TracefsError(f"tracefs is not mounted at {TRACEFS} and mounting it failed: {err}")


def kprobes_available() -> bool:
    """Whether the kernel can make kprobes (a kprobe PMU, or kprobe_events in tracefs)."""
    if os.path.isdir("/sys/bus/event_source/devices/kprobe"):
        return True
    return any(os.path.exists(os.path.join(d, "kprobe_events")) for d in (TRACEFS, DEBUGFS_TRACING))


def needs_tracefs(section: str) -> bool:
    """Whether auto-attaching a program from ``section`` reads tracefs."""
    return section.startswith(TRACEFS_PREFIXES)


def possible_cpus() -> int:
    """Number of possible CPUs (what per-CPU maps hold one value for)."""
    from btfgen.runtime._libbpf import lib
    n = int(lib().libbpf_num_possible_cpus())
    if n <= 0:
        raise RuntimeBpfError(f"cannot read the possible CPU count: {os.strerror(-n)}")
    return n


def ifindex(interface: int | str) -> int:
    """The index of a network interface given by name or index."""
    if isinstance(interface, int):
        return interface
    idx = 0
    try:
        idx = socket.if_nametoindex(interface)
    except OSError:
        pass
    if not idx:
        raise RuntimeBpfError(f"no network interface named {interface!r}")
    return idx
