#!/usr/bin/env python3
"""XDP packet sampler: print a typed header and the first bytes of each packet.

The BPF program emits ``struct pkt_meta`` followed by up to 256 packet bytes
(bpf_perf_event_output with BPF_F_CTXLEN_MASK); the runtime delivers the record
with the trailing bytes as ``.payload``.  Run as root: ``pktsample.py IFNAME``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pktsample_skel import PktMeta, PktsampleSkel  # noqa: E402

from btfgen.runtime import BpfError, RuntimeBpfError, WithPayload  # noqa: E402


def packet_bytes(sample: WithPayload[PktMeta]) -> bytes:
    """The captured packet bytes (the payload without the perf sample padding)."""
    return sample.payload[: sample.record.cap_len]


def format_sample(sample: WithPayload[PktMeta]) -> str:
    """Header fields and a hex dump of the first 32 captured bytes."""
    m = sample.record
    head = packet_bytes(sample)[:32].hex(" ")
    return (f"{m.seq:5d} if={m.ifindex} len={m.pkt_len:5d} cap={m.cap_len:3d} "
            f"proto=0x{m.eth_proto:04x} | {head}")


def load_sampler(every: int = 1) -> PktsampleSkel:
    """Load the sampler (not attached yet: open the perf buffer first, so no
    sample is emitted before anyone reads); the caller destroys it."""
    skel = PktsampleSkel.open()
    try:
        skel.rodata.sample_every = every
        skel.load()
    except BaseException:
        skel.destroy()
        raise
    return skel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ifname")
    ap.add_argument("--every", type=int, default=1, help="sample every Nth packet")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    a = ap.parse_args(argv)
    try:
        with load_sampler(a.every) as skel:
            def show(cpu: int, s: Any) -> None:
                print(format_sample(s), flush=True)

            pb = skel.maps.samples.open_perf_buffer(show, payload=True)
            skel.progs.sample.attach_xdp(a.ifname)
            deadline = None if a.duration is None else time.monotonic() + a.duration
            try:
                while deadline is None or time.monotonic() < deadline:
                    pb.poll(100)
            except KeyboardInterrupt:
                pass
    except (BpfError, RuntimeBpfError) as e:
        print(f"pktsample: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
