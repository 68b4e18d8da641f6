"""``probe-tool [--ppid PID] [-n COUNT]``: print execve() calls as they happen."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from probe_tool.probe_skel import ProbeEvent, ProbeSkel


def format_event(event: ProbeEvent) -> str:
    """One output line per event."""
    comm = event.comm.decode(errors="replace")
    filename = event.filename.decode(errors="replace")
    return f"{event.pid:>7} {event.ppid:>7} {comm:<16} {filename}"


def main(argv: Sequence[str] | None = None) -> int:
    """Trace until interrupted (or ``--count`` events)."""
    parser = argparse.ArgumentParser(prog="probe-tool", description=__doc__)
    parser.add_argument("--ppid", type=int, default=0,
                        help="only report children of this process")
    parser.add_argument("-n", "--count", type=int, default=0, help="stop after COUNT events")
    args = parser.parse_args(argv)
    with ProbeSkel.open() as skel:
        skel.rodata.targ_ppid = args.ppid
        skel.load()
        skel.attach()
        print(f"{'PID':>7} {'PPID':>7} {'COMM':<16} FILENAME", flush=True)
        with skel.maps.probe_events.open_ring_buffer() as events:
            try:
                for n, event in enumerate(events, 1):
                    print(format_event(event), flush=True)
                    if n == args.count:
                        break
            except KeyboardInterrupt:
                pass
        print(f"{skel.bss.execs} execve() calls seen", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
