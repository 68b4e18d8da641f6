#!/usr/bin/env python3
"""opensnoop in Python: print every openat() with its result.

The BPF side filters by pid/uid through .rodata globals (set before load) and
pairs syscall entry and exit through a hash map keyed by thread id.  Run as root.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from opensnoop_skel import Event, OpensnoopSkel  # noqa: E402

from btfgen.runtime import BpfError, RuntimeBpfError  # noqa: E402

#: The "no uid filter" value of targ_uid.
ANY_UID = 0xFFFFFFFF
HEADER = f"{'SEQ':>5} {'PID':>7} {'COMM':16} {'FD':>4} {'ERR':>3} {'FLAGS':>8} PATH"


def format_event(e: Event) -> str:
    """One line per open: fd (or errno), flags, path."""
    fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
    comm = e.comm.decode(errors="replace")
    return (f"{e.seq:5d} {e.pid:7d} {comm:16} {fd:4d} {err:3d} {e.flags:8o} "
            f"{e.fname.decode(errors='replace')}")


def open_tracer(pid: int = 0, uid: int | None = None) -> OpensnoopSkel:
    """Open, set the filters and load; the caller opens the perf buffer, then
    calls ``attach()`` (so no event is emitted before anyone reads), and
    destroys the skeleton."""
    skel = OpensnoopSkel.open()
    try:
        skel.rodata.targ_pid = pid
        skel.rodata.targ_uid = ANY_UID if uid is None else uid
        skel.load()
    except BaseException:
        skel.destroy()
        raise
    return skel


def trace(on_event: Callable[[Event], object], duration: float | None = None, pid: int = 0,
          uid: int | None = None, started: Callable[[], object] | None = None) -> None:
    """Trace opens for ``duration`` seconds (or until Ctrl-C); ``started()`` is
    called once tracing is live."""
    with open_tracer(pid, uid) as skel:
        pb = skel.maps.events.open_perf_buffer(lambda cpu, e: on_event(e))
        skel.attach()
        if started is not None:
            started()
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                pb.poll(100)
        except KeyboardInterrupt:
            pass
        pb.consume()
        in_flight = sum(1 for _ in skel.maps.start.keys())
        print(f"# {skel.bss.seq} events, {in_flight} opens in flight, lost {pb.lost}",
              file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-p", "--pid", type=int, default=0, help="only this process")
    ap.add_argument("-u", "--uid", type=int, help="only this user")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    a = ap.parse_args(argv)
    try:
        trace(lambda e: print(format_event(e), flush=True), a.duration, a.pid, a.uid,
              started=lambda: print(HEADER, flush=True))
    except (BpfError, RuntimeBpfError) as e:
        print(f"opensnoop: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
