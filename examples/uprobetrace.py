#!/usr/bin/env python3
"""uprobe tracer: print each call of FUNC in BINARY (a path or a library name such
as ``libc.so.6``) with its first argument, return value and duration.  Run as root:
``uprobetrace.py libc.so.6 malloc --pid 1234``."""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from uprobetrace_skel import Call, UprobetraceSkel  # noqa: E402

from btfgen.runtime import BpfError, RuntimeBpfError  # noqa: E402


def format_call(c: Call) -> str:  # pid, tid, command, argument, return value, duration
    return (f"{c.pid:7d} {c.tid:7d} {c.comm.decode(errors='replace'):16} "
            f"arg={c.arg:<#14x} ret={c.ret:<8d} {c.duration_ns / 1000:9.1f} us")


def open_tracer(binary: str, func: str, pid: int = -1) -> UprobetraceSkel:
    """Load and attach the entry and return probes; the caller destroys the skeleton."""
    skel = UprobetraceSkel.open_and_load()
    try:
        skel.progs.enter.attach_uprobe(binary, func, pid=pid)
        skel.progs.leave.attach_uprobe(binary, func, pid=pid, retprobe=True)
    except BaseException:
        skel.destroy()
        raise
    return skel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary"), ap.add_argument("func")
    ap.add_argument("--pid", type=int, default=-1, help="only this process")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    a = ap.parse_args(argv)
    try:
        with open_tracer(a.binary, a.func, a.pid) as skel:
            rb = skel.maps.calls.open_ring_buffer(lambda c: print(format_call(c), flush=True))
            end = None if a.duration is None else time.monotonic() + a.duration
            try:
                while end is None or time.monotonic() < end:
                    rb.poll(100)
            except KeyboardInterrupt:
                pass
    except (BpfError, RuntimeBpfError) as e:
        print(f"uprobetrace: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
