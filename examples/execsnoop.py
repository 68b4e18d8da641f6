#!/usr/bin/env python3
"""execsnoop in Python: print every execve() with its arguments.

Uses the skeleton ``make`` generates from execsnoop.bpf.c: typed records
(``Event``), a .rodata filter (``--ppid``) and a perf buffer.  Run as root.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from execsnoop_skel import Event, ExecsnoopSkel  # noqa: E402

from btfgen.runtime import BpfError, RuntimeBpfError  # noqa: E402

HEADER = f"{'SEQ':>5} {'PCOMM':16} {'PID':>7} {'PPID':>7} {'UID':>5} ARGS"


def format_event(e: Event) -> str:
    """One line per exec: seq, the (pre-exec) command name, pids, uid, argv."""
    args = b" ".join(e.argv[: e.args_count]).decode(errors="replace")
    if not args:
        args = e.filename.decode(errors="replace")
    comm = e.comm.decode(errors="replace")
    return f"{e.seq:5d} {comm:16} {e.pid:7d} {e.ppid:7d} {e.uid:5d} {args}"


def trace(on_event: Callable[[Event], object], duration: float | None = None,
          ppid: int = 0, started: Callable[[], object] | None = None) -> int:
    """Trace execs (children of ``ppid`` if non-zero) for ``duration`` seconds
    (or until Ctrl-C), calling ``on_event`` for each; returns the lost count."""
    with ExecsnoopSkel.open() as skel:
        skel.rodata.targ_ppid = ppid
        skel.load()
        pb = skel.maps.events.open_perf_buffer(
            lambda cpu, e: on_event(e),
            lambda cpu, n: print(f"lost {n} events on CPU {cpu}", file=sys.stderr))
        skel.attach()  # after the buffer is open: no event goes unread
        if started is not None:
            started()
        deadline = None if duration is None else time.monotonic() + duration
        try:
            while deadline is None or time.monotonic() < deadline:
                pb.poll(100)
        except KeyboardInterrupt:
            pass
        pb.consume()
        return pb.lost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ppid", type=int, default=0, help="only children of this pid")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    a = ap.parse_args(argv)
    try:
        trace(lambda e: print(format_event(e), flush=True), a.duration, a.ppid,
              started=lambda: print(HEADER, flush=True))
    except (BpfError, RuntimeBpfError) as e:
        print(f"execsnoop: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
