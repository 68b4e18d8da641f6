#!/usr/bin/env python3
"""profile: profile CPU usage by sampling stack traces at a timed interval.

A port of libbpf-tools' profile to btfgen: same flags, same output.

    profile             # profile stack traces at 49 Hertz until Ctrl-C
    profile -F 99       # profile stack traces at 99 Hertz
    profile -c 1000000  # profile stack traces every 1 in a million events
    profile 5           # profile at 49 Hertz for 5 seconds only
    profile -f          # output in folded format for flame graphs
    profile -p 185      # only profile process with PID 185
    profile -L 185      # only profile thread with TID 185
    profile -U          # only show user space stacks (no kernel)
    profile -K          # only show kernel space stacks (no user)
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from profile_skel import KeyT, ProfileSkel  # noqa: E402
from toolkit import main_of, parser  # noqa: E402

from btfgen.runtime.symbols import Symbol, folded  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = parser("profile", __doc__)
    ap.add_argument("-p", "--pid", type=int, default=-1, help="profile process with this PID")
    ap.add_argument("-L", "--tid", type=int, default=-1, help="profile thread with this TID")
    ap.add_argument("-U", "--user-stacks-only", action="store_true",
                    help="show stacks from user space only (no kernel space stacks)")
    ap.add_argument("-K", "--kernel-stacks-only", action="store_true",
                    help="show stacks from kernel space only (no user space stacks)")
    ap.add_argument("-F", "--frequency", type=int, default=49, help="sample frequency, Hertz")
    ap.add_argument("-c", "--count", type=int, help="sample period, number of events")
    ap.add_argument("-d", "--delimited", action="store_true",
                    help="insert delimiter between kernel/user stacks")
    ap.add_argument("-a", "--annotations", action="store_true",
                    help="add _[k] annotations to kernel frames")
    ap.add_argument("-I", "--include-idle", action="store_true", help="include CPU idle stacks")
    ap.add_argument("-f", "--folded", action="store_true", help="output folded format")
    ap.add_argument("--stack-storage-size", type=int, default=1024,
                    help="the number of unique stack traces that can be stored and displayed")
    ap.add_argument("-C", "--cpu", type=int, help="cpu number to run profile on")
    ap.add_argument("-v", "--verbose", action="store_true", help="verbose debug output")
    ap.add_argument("duration", nargs="?", type=float, help="duration in seconds")
    a = ap.parse_args(argv)
    if a.user_stacks_only and a.kernel_stacks_only:
        ap.error("user_stacks_only and kernel_stacks_only cannot be used together.")
    return a


def missed(stack_id: int) -> bool:
    """A stack the kernel could not store (-EFAULT is "no stack here", not a miss)."""
    return stack_id < 0 and stack_id != -errno.EFAULT


def frames_of(skel: ProfileSkel, key: KeyT, a: argparse.Namespace) -> tuple[
        list[str] | None, list[str] | None]:
    """(user frames, kernel frames), innermost first; None for a missed stack."""
    stacks = skel.maps.stackmap
    user: list[str] | None = []
    kern: list[str] | None = []
    if not a.kernel_stacks_only:
        user = None if missed(key.user_stack_id) else [
            str(f) for f in stacks.symbolize(key.user_stack_id, pid=key.pid)]
    if not a.user_stacks_only:
        kern = None if missed(key.kern_stack_id) else [
            f.name + ("_[k]" if a.annotations else "")
            for f in stacks.symbolize(key.kern_stack_id)]
    return user, kern


def print_folded(comm: str, user: list[str] | None, kern: list[str] | None, count: int,
                 a: argparse.Namespace) -> None:
    outer: list[str] = []  # outermost first, after comm
    if not a.kernel_stacks_only:
        outer += ["[Missed User Stack]"] if user is None else list(reversed(user))
    if not a.user_stacks_only:
        if a.delimited and user and kern:
            outer.append("-")
        outer += ["[Missed Kernel Stack]"] if kern is None else list(reversed(kern))
    print(folded([Symbol(n) for n in reversed(outer)], comm=comm, count=count))


def print_stack(comm: str, pid: int, user: list[str] | None, kern: list[str] | None,
                count: int, a: argparse.Namespace) -> None:
    lines: list[str] = []
    if not a.user_stacks_only:
        lines += ["[Missed Kernel Stack]"] if kern is None else kern
    if not a.kernel_stacks_only:
        if a.delimited and kern and user:
            lines.append("--")
        lines += ["[Missed User Stack]"] if user is None else user
    for line in lines:
        print(f"    {line}")
    print(f"    {'-':<16} {comm} ({pid})")
    print(f"        {count}\n")


def print_counts(skel: ProfileSkel, a: argparse.Namespace) -> None:
    for key, count in sorted(skel.maps.counts.items(), key=lambda kv: kv[1]):
        user, kern = frames_of(skel, key, a)
        comm = key.name.decode(errors="replace")
        if a.folded:
            print_folded(comm, user, kern, count, a)
        else:
            print_stack(comm, key.pid, user, kern, count, a)


def run(a: argparse.Namespace) -> None:
    with ProfileSkel.open() as skel:
        ro = skel.rodata
        ro.targ_pid, ro.targ_tid, ro.include_idle = a.pid, a.tid, a.include_idle
        ro.user_stacks_only, ro.kernel_stacks_only = a.user_stacks_only, a.kernel_stacks_only
        skel.maps.stackmap.max_entries = a.stack_storage_size
        skel.load()
        cpus = None if a.cpu is None else [a.cpu]
        if a.count:
            skel.progs.do_perf_event.attach_perf_event("cpu-clock", period=a.count, cpus=cpus)
        else:
            skel.progs.do_perf_event.attach_perf_event("cpu-clock", freq=a.frequency,
                                                       cpus=cpus)
        if not a.folded:
            who = (f"PID {a.pid}" if a.pid != -1 else f"TID {a.tid}" if a.tid != -1
                   else "all threads")
            what = ("user" if a.user_stacks_only else "kernel" if a.kernel_stacks_only
                    else "user + kernel")
            how = f"{a.count} events" if a.count else f"{a.frequency} Hertz"
            tail = (f" for {a.duration:g} secs." if a.duration is not None
                    else "... Hit Ctrl-C to end.")
            print(f"Sampling at {how} of {who} by {what} stack{tail}", flush=True)
        try:
            time.sleep(a.duration if a.duration is not None else 99999999)
        except KeyboardInterrupt:
            pass
        skel.progs.do_perf_event.detach()
        print_counts(skel, a)
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    return main_of("profile", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
