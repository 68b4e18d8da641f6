#!/usr/bin/env python3
"""opensnoop: trace open family syscalls.

A port of libbpf-tools' opensnoop to btfgen: same flags, same output.

    opensnoop           # trace all open() syscalls
    opensnoop -T        # include timestamps
    opensnoop -U        # include UID
    opensnoop -x        # only show failed opens
    opensnoop -p 181    # only trace PID 181
    opensnoop -t 123    # only trace TID 123
    opensnoop -u 1000   # only trace UID 1000
    opensnoop -d 10     # trace for 10 seconds only
    opensnoop -n main   # only print process names containing "main"
    opensnoop -e        # show extended fields
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opensnoop_skel import Event, OpensnoopSkel  # noqa: E402
from toolkit import lost_events, main_of, parser, poll_perf  # noqa: E402

INVALID_UID = 0xFFFFFFFF


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = parser("opensnoop", __doc__)
    ap.add_argument("-d", "--duration", type=float, default=0, help="duration to trace")
    ap.add_argument("-e", "--extended-fields", action="store_true", help="print extended fields")
    ap.add_argument("-n", "--name", help="trace process names containing this")
    ap.add_argument("-p", "--pid", type=int, default=0, help="process ID to trace")
    ap.add_argument("-t", "--tid", type=int, default=0, help="thread ID to trace")
    ap.add_argument("-T", "--timestamp", action="store_true", help="print timestamp")
    ap.add_argument("-u", "--uid", type=int, default=INVALID_UID, help="user ID to trace")
    ap.add_argument("-U", "--print-uid", action="store_true", help="print UID")
    ap.add_argument("-v", "--verbose", action="store_true", help="verbose debug output")
    ap.add_argument("-x", "--failed", action="store_true", help="failed opens only")
    return ap.parse_args(argv)


def header(a: argparse.Namespace) -> str:
    return "".join([
        f"{'TIME':<8} " if a.timestamp else "",
        f"{'UID':<7} " if a.print_uid else "",
        f"{'PID':<6} {'COMM':<16} {'FD':>3} {'ERR':>3} ",
        f"{'FLAGS':<8} " if a.extended_fields else "",
        "PATH"])


def format_event(e: Event, a: argparse.Namespace) -> str | None:
    comm = e.comm.decode(errors="replace")
    if a.name and a.name not in comm:
        return None
    fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
    return "".join([
        f"{time.strftime('%H:%M:%S'):<8} " if a.timestamp else "",
        f"{e.uid:<7d} " if a.print_uid else "",
        f"{e.pid:<6d} {comm:<16} {fd:3d} {err:3d} ",
        f"{e.flags:08o} " if a.extended_fields else "",
        e.fname.decode(errors="replace")])


def run(a: argparse.Namespace) -> None:
    with OpensnoopSkel.open() as skel:
        ro = skel.rodata
        ro.targ_tgid, ro.targ_pid, ro.targ_uid, ro.targ_failed = a.pid, a.tid, a.uid, a.failed
        skel.load()

        def on_event(cpu: int, e: Event) -> None:
            line = format_event(e, a)
            if line is not None:
                print(line)

        pb = skel.maps.events.open_perf_buffer(on_event, lost_events)
        skel.attach()
        print(header(a), flush=True)
        poll_perf(pb, a.duration)


def main(argv: list[str] | None = None) -> int:
    return main_of("opensnoop", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
