"""Opening perf events for ``Program.attach_perf_event``: one event per CPU, each
attached with libbpf ``bpf_program__attach_perf_event_opts`` (the link owns the
event's fd and closes it on detach)."""

from __future__ import annotations

import errno
import os
import platform
from collections.abc import Sequence
from typing import Any

from btfgen.runtime._libbpf import ffi, lib, libc
from btfgen.runtime.errors import BpfError, RuntimeBpfError, error_class
from btfgen.runtime.link import BpfLinkPart, GroupPart, Part
from btfgen.runtime.native import check_ptr, close_fd

ffi.cdef("""
long syscall(long number, ...);
struct bpf_perf_event_opts { size_t sz; uint64_t bpf_cookie; };
struct bpf_link *bpf_program__attach_perf_event_opts(const struct bpf_program *prog, int pfd,
                                                     const struct bpf_perf_event_opts *opts);
""")

#: An event: a name from :data:`EVENTS` or ``(perf type, config)``.
EventSpec = str | tuple[int, int]

PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE = 0, 1
#: Event names (as ``perf list`` spells them) -> (type, config).
EVENTS: dict[str, tuple[int, int]] = {
    "cpu-cycles": (0, 0), "cycles": (0, 0), "instructions": (0, 1),
    "cache-references": (0, 2), "cache-misses": (0, 3), "branch-instructions": (0, 4),
    "branches": (0, 4), "branch-misses": (0, 5), "bus-cycles": (0, 6),
    "stalled-cycles-frontend": (0, 7), "stalled-cycles-backend": (0, 8), "ref-cycles": (0, 9),
    "cpu-clock": (1, 0), "task-clock": (1, 1), "page-faults": (1, 2), "faults": (1, 2),
    "context-switches": (1, 3), "cs": (1, 3), "cpu-migrations": (1, 4),
    "migrations": (1, 4), "minor-faults": (1, 5), "major-faults": (1, 6),
    "alignment-faults": (1, 7), "emulation-faults": (1, 8), "dummy": (1, 9),
}
#: Sampling rate when neither ``freq`` nor ``period`` is given (Hz; off the timer tick).
DEFAULT_FREQ = 49
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "riscv64": 241,
                        "ppc64le": 319, "s390x": 331, "i686": 336}
_PERF_FLAG_FD_CLOEXEC = 8
_ATTR_FREQ = 1 << 10


def _resolve(event: EventSpec) -> tuple[int, int]:
    if isinstance(event, tuple):
        if len(event) != 2 or not all(isinstance(v, int) for v in event):
            raise ValueError(f"attach_perf_event: event must be a name or (type, config), "
                             f"not {event!r}")
        return event
    try:
        return EVENTS[event]
    except KeyError:
        raise ValueError(f"attach_perf_event: unknown event {event!r}; known: "
                         f"{', '.join(sorted(EVENTS))}, or pass (type, config)") from None


def online_cpus() -> list[int]:
    """The online CPUs, from /sys/devices/system/cpu/online."""
    with open("/sys/devices/system/cpu/online") as f:
        text = f.read().strip()
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def perf_event_open(attr: Any, pid: int, cpu: int) -> int:
    """The perf_event_open(2) syscall; an fd, or OSError."""
    nr = _SYS_PERF_EVENT_OPEN.get(platform.machine())
    if nr is None:
        raise RuntimeBpfError(f"perf_event_open: unknown syscall number on {platform.machine()}")
    fd = int(libc().syscall(ffi.cast("long", nr), attr, ffi.cast("int", pid),
                            ffi.cast("int", cpu), ffi.cast("int", -1),
                            ffi.cast("unsigned long", _PERF_FLAG_FD_CLOEXEC)))
    if fd < 0:
        err = ffi.errno
        raise OSError(err, os.strerror(err))
    return fd


def attach_perf_event(prog_name: str, prog: Any, event: EventSpec, *, freq: int | None,
                      period: int | None, cpus: Sequence[int] | None, pid: int
                      ) -> tuple[Part, str]:
    """Open ``event`` on each CPU and attach ``prog`` to each: one part, its description."""
    type_, config = _resolve(event)
    if freq is not None and period is not None:
        raise ValueError("attach_perf_event: give freq or period, not both")
    if freq is None and period is None:
        freq = DEFAULT_FREQ
    attr = ffi.new("struct perf_event_attr *")
    attr.type = type_
    attr.size = ffi.sizeof("struct perf_event_attr")
    attr.config = config
    if freq is not None:
        if freq <= 0:
            raise ValueError(f"attach_perf_event: freq must be positive, not {freq}")
        attr.sample_period = freq  # a union with sample_freq
        attr.flags = _ATTR_FREQ
    else:
        assert period is not None
        if period <= 0:
            raise ValueError(f"attach_perf_event: period must be positive, not {period}")
        attr.sample_period = period
    targets = list(cpus) if cpus is not None else ([-1] if pid != -1 else online_cpus())
    name = event if isinstance(event, str) else f"type {type_} config {config}"
    opts = ffi.new("struct bpf_perf_event_opts *")
    opts.sz = ffi.sizeof("struct bpf_perf_event_opts")
    parts: list[Part] = []
    try:
        for cpu in targets:
            where = f"perf event {name} on cpu {cpu}" + (f" pid {pid}" if pid != -1 else "")
            try:
                pfd = perf_event_open(attr, pid, cpu)
            except OSError as e:
                err = e.errno or errno.EINVAL
                raise _open_error(prog_name, where, err) from None
            try:
                ptr = check_ptr(f"program {prog_name}: attach {where}",
                                lambda: lib().bpf_program__attach_perf_event_opts(
                                    prog, pfd, opts))  # noqa: B023 - called at once
            except BaseException:
                close_fd(pfd)
                raise
            parts.append(BpfLinkPart(ptr))
    except BaseException:
        for p in reversed(parts):
            p.close()
        raise
    rate = f"{freq} Hz" if freq is not None else f"every {period}"
    return GroupPart(parts), f"perf event {name} ({rate}) on {len(parts)} cpu(s)"


def _open_error(prog_name: str, where: str, err: int) -> BpfError:
    what = f"program {prog_name}: open {where}"
    if err == errno.ENOENT:
        return error_class(err)(what + " (this machine has no such event: hardware events "
                                "need a PMU, which VMs often lack)", err)
    return error_class(err)(what, err)
