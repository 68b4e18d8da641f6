"""What the ported tools share: the command-line shell around them and the perf
buffer loop.  (Not a tool itself.)"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from btfgen.runtime import BpfError, RuntimeBpfError


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser whose description is the docstring's first line and whose
    epilog is its indented example lines, as the C tools' --help shows them."""
    examples = [line for line in doc.splitlines() if line.startswith("    ")]
    return argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   epilog="EXAMPLES:\n" + "\n".join(examples))


def main_of(name: str, parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
            run: Callable[[argparse.Namespace], None],
            argv: Sequence[str] | None = None) -> int:
    """Run a tool as the C tools behave: killed quietly by a closed pipe, ``-v``
    shows libbpf's debug output, a failure is one line on stderr and exit status 1."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    a = parse_args(argv)
    if getattr(a, "verbose", False):
        logging.basicConfig(level=logging.DEBUG)
    try:
        run(a)
    except (BpfError, RuntimeBpfError, OSError) as e:
        print(f"{name}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def poll_perf(pb: Any, duration: float = 0) -> None:
    """Poll a perf buffer until ``duration`` seconds pass (0: until Ctrl-C), then
    read what is left."""
    end = time.monotonic() + duration if duration else None
    try:
        while end is None or time.monotonic() < end:
            pb.poll(100)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    pb.consume()
    sys.stdout.flush()


def lost_events(cpu: int, n: int) -> None:
    """The lost-samples line libbpf-tools print."""
    print(f"Lost {n} events on CPU #{cpu}!", file=sys.stderr)
