#!/usr/bin/env python3
"""`make demo`: trace execs with the generated execsnoop skeleton for a few
seconds, start some commands ourselves, and print the typed events."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

COMMANDS = [
    ["/bin/echo", "hello", "from", "btfgen"],
    ["/bin/true", "--an", "argument"],
    ["/bin/ls", "-d", "/"],
    ["/bin/sh", "-c", "exit 0"],
]


def main() -> int:
    if os.geteuid() != 0:
        print("demo: loading BPF programs needs root; run `sudo make demo`", file=sys.stderr)
        return 1
    try:
        from execsnoop import HEADER, format_event, trace
    except ImportError as e:
        print(f"demo: {e}; run `make -C examples` first", file=sys.stderr)
        return 1
    from btfgen.runtime import BpfError, RuntimeBpfError

    events = []

    def on_event(e: object) -> None:
        events.append(e)
        print(format_event(e), flush=True)  # type: ignore[arg-type]

    def run_commands() -> None:
        for cmd in COMMANDS:
            time.sleep(0.3)
            subprocess.run(cmd, stdout=subprocess.DEVNULL)

    print("Tracing execve() of this demo's children for 3 seconds (typed records from "
          "examples/execsnoop_skel.py):\n")
    print(HEADER)
    try:
        trace(on_event, duration=3.0, ppid=os.getpid(),
              started=lambda: threading.Thread(target=run_commands, daemon=True).start())
    except (BpfError, RuntimeBpfError) as e:
        print(f"demo: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    if events:
        print(f"\nThe last record, as the generated dataclass:\n  {events[-1]!r}")
    print(f"\n{len(events)} events for {len(COMMANDS)} commands started.")
    return 0 if len(events) >= len(COMMANDS) else 1


if __name__ == "__main__":
    sys.exit(main())
