"""Checks and set-up the kernel side needs: privileges and tracefs."""

from __future__ import annotations

import os
import socket

from btfgen.runtime._libbpf import ffi, libc
from btfgen.runtime.errors import RuntimeBpfError

TRACEFS = "/sys/kernel/tracing"
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"

#: Section prefixes whose auto-attach goes through tracefs (event ids, legacy probes).
TRACEFS_PREFIXES = ("tp/", "tracepoint/", "kprobe/", "kretprobe/", "uprobe", "uretprobe",
                    "ksyscall/", "kretsyscall/", "usdt")


class TracefsError(RuntimeBpfError):
    """tracefs is not mounted and could not be mounted."""


def tracefs_available() -> bool:
    """True when the tracing event directory is present."""
    return any(os.path.isdir(os.path.join(d, "events")) for d in (TRACEFS, DEBUGFS_TRACING))


def ensure_tracefs() -> None:
    """Mount tracefs on /sys/kernel/tracing when it is missing (as libbpf needs it).

    Raises :class:`TracefsError` with one sentence when that is not possible.
    """
    if tracefs_available():
        return
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
