#!/usr/bin/env python3
"""runqlat: summarize run queue (scheduler) latency as a histogram.

A port of libbpf-tools' runqlat to btfgen: same flags, same output.

    runqlat         # summarize run queue latency as a histogram
    runqlat 1 10    # print 1 second summaries, 10 times
    runqlat -mT 1   # 1s summaries, milliseconds, and timestamps
    runqlat -P      # show each PID separately
    runqlat -p 185  # trace PID 185 only
    runqlat -c CG   # trace processes under cgroup path CG
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from runqlat_skel import RunqlatSkel  # noqa: E402
from toolkit import main_of, parser  # noqa: E402

from btfgen.runtime.hist import print_log2_hist  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = parser("runqlat", __doc__)
    ap.add_argument("-T", "--timestamp", action="store_true", help="include timestamp on output")
    ap.add_argument("-m", "--milliseconds", action="store_true", help="millisecond histogram")
    ap.add_argument("--pidnss", action="store_true", help="print a histogram per PID namespace")
    ap.add_argument("-L", "--tids", action="store_true", help="print a histogram per thread ID")
    ap.add_argument("-P", "--pids", action="store_true", help="print a histogram per process ID")
    ap.add_argument("-p", "--pid", type=int, default=0, help="trace this PID only")
    ap.add_argument("-c", "--cgroup", help="trace processes in this cgroup path")
    ap.add_argument("-v", "--verbose", action="store_true", help="verbose debug output")
    ap.add_argument("interval", nargs="?", type=float, default=99999999.0)
    ap.add_argument("count", nargs="?", type=int, default=99999999)
    a = ap.parse_args(argv)
    if sum((a.pidnss, a.tids, a.pids)) > 1:
        ap.error("pidnss, pids, tids cannot be used together.")
    if a.interval <= 0 or a.count <= 0:
        ap.error("interval and count must be positive")
    return a


def print_hists(skel: RunqlatSkel, a: argparse.Namespace) -> None:
    units = "msecs" if a.milliseconds else "usecs"
    label = "pid" if a.pids else "tid" if a.tids else "pidns" if a.pidnss else None
    for key, hist in skel.maps.hists.items():
        section = None
        if label is not None:
            section = f"{label} = {key} {hist.comm.decode(errors='replace')}"
        print_log2_hist(hist.slots, units, log2_base="libbpf", section=section)
    skel.maps.hists.clear()


def run(a: argparse.Namespace) -> None:
    with RunqlatSkel.open() as skel:
        ro = skel.rodata
        ro.targ_per_process, ro.targ_per_thread, ro.targ_per_pidns = a.pids, a.tids, a.pidnss
        ro.targ_ms, ro.targ_tgid, ro.filter_cg = a.milliseconds, a.pid, a.cgroup is not None
        skel.load()
        if a.cgroup is not None:
            fd = os.open(a.cgroup, os.O_RDONLY)
            try:
                skel.maps.cgroup_map[0] = fd
            finally:
                os.close(fd)
        skel.attach()
        print("Tracing run queue latency... Hit Ctrl-C to end.", flush=True)
        for _ in range(a.count):
            try:
                time.sleep(a.interval)
                exiting = False
            except KeyboardInterrupt:
                exiting = True
            print()
            if a.timestamp:
                print(f"{time.strftime('%H:%M:%S'):<8}")
            print_hists(skel, a)
            sys.stdout.flush()
            if exiting:
                break


def main(argv: list[str] | None = None) -> int:
    return main_of("runqlat", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
