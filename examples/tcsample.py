#!/usr/bin/env python3
"""tc packet sampler: a typed header and the first bytes of every Nth packet
entering or leaving IFNAME.  Run as root: ``tcsample.py IFNAME --every 10``."""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tcsample_skel import TcSample, TcsampleSkel  # noqa: E402

from btfgen.runtime import BpfError, RuntimeBpfError, WithPayload  # noqa: E402


def format_sample(s: WithPayload[TcSample]) -> str:
    """Direction, sizes, protocol and the first 24 captured bytes in hex."""
    m = s.record
    head = s.payload[: min(m.cap_len, 24)].hex(" ")
    return (f"{m.seq:5d} {'in ' if m.ingress else 'out'} if={m.ifindex} len={m.pkt_len:5d} "
            f"proto=0x{m.protocol:04x} | {head}")


def open_sampler(ifname: str, every: int = 1) -> TcsampleSkel:
    """Load and attach at ingress and egress of ``ifname``; the caller destroys it."""
    skel = TcsampleSkel.open()
    try:
        skel.rodata.sample_every = every
        skel.load()
        for direction in ("ingress", "egress"):
            skel.progs.sample.attach_tc(ifname, direction=direction)
    except BaseException:
        skel.destroy()
        raise
    return skel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ifname")
    ap.add_argument("--every", type=int, default=1, help="sample every Nth packet")
    a = ap.parse_args(argv)
    try:
        with open_sampler(a.ifname, a.every) as skel:
            pb = skel.maps.samples.open_perf_buffer(
                lambda cpu, s: print(format_sample(s), flush=True), payload=True)
            while True:
                pb.poll(100)
    except (BpfError, RuntimeBpfError) as e:
        print(f"tcsample: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
