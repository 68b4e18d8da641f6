#!/usr/bin/env python3
"""tcplife: trace the lifespan of TCP sessions and summarize.

A port of libbpf-tools' tcplife to btfgen: same flags, same output.

    tcplife -p 1215             # only trace PID 1215
    tcplife -p 1215 -4          # trace IPv4 only
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tcplife_skel import Event, TcplifeSkel  # noqa: E402
from toolkit import lost_events, main_of, parser, poll_perf  # noqa: E402

MAX_PORTS = 1024


def ports(text: str) -> list[int]:
    """A comma-separated list of ports."""
    try:
        out = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port list: {text!r}") from None
    if not out or len(out) > MAX_PORTS or any(not 0 < p < 65536 for p in out):
        raise argparse.ArgumentTypeError(f"invalid port list: {text!r}")
    return out


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = parser("tcplife", __doc__)
    ap.add_argument("-p", "--pid", type=int, default=0, help="process ID to trace")
    ap.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 only")
    ap.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 only")
    ap.add_argument("-L", "--localport", type=ports, help="comma-separated local ports")
    ap.add_argument("-D", "--remoteport", type=ports, help="comma-separated remote ports")
    ap.add_argument("-T", "--time", action="store_true", help="include timestamp on output")
    ap.add_argument("-w", "--wide", action="store_true", help="wide column output")
    ap.add_argument("-v", "--verbose", action="store_true", help="verbose debug output")
    ap.add_argument("-d", "--duration", type=float, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.ipv4 and a.ipv6:
        ap.error("-4 and -6 cannot be used together")
    return a


def header(a: argparse.Namespace) -> str:
    w = 26 if a.wide else 15
    return (f"{'TIME(s)':<8} " if a.time else "") + (
        f"{'PID':<7} {'COMM':<16} {'LADDR':<{w}} {'LPORT':<5} {'RADDR':<{w}} {'RPORT':<5} "
        f"{'TX_KB':<6} {'RX_KB':<6} MS")


def format_event(e: Event, a: argparse.Namespace) -> str:
    w = 26 if a.wide else 15
    fam, n = (socket.AF_INET, 4) if e.family == socket.AF_INET else (socket.AF_INET6, 16)
    saddr = socket.inet_ntop(fam, bytes(e.saddr[:n]))
    daddr = socket.inet_ntop(fam, bytes(e.daddr[:n]))
    return (f"{time.strftime('%H:%M:%S'):>8} " if a.time else "") + (
        f"{e.pid:<7d} {e.comm.decode(errors='replace'):<16} {saddr:<{w}} {e.sport:<5d} "
        f"{daddr:<{w}} {e.dport:<5d} {e.tx_b / 1024:<6.2f} {e.rx_b / 1024:<6.2f} "
        f"{e.span_us / 1000:.2f}")


def run(a: argparse.Namespace) -> None:
    with TcplifeSkel.open() as skel:
        ro = skel.rodata
        ro.target_pid = a.pid
        ro.target_family = socket.AF_INET if a.ipv4 else socket.AF_INET6 if a.ipv6 else 0
        if a.localport:
            ro.filter_sport = True
            ro.target_sports = a.localport + [0] * (MAX_PORTS - len(a.localport))
        if a.remoteport:
            ro.filter_dport = True
            ro.target_dports = a.remoteport + [0] * (MAX_PORTS - len(a.remoteport))
        skel.load()
        pb = skel.maps.events.open_perf_buffer(lambda cpu, e: print(format_event(e, a)),
                                               lost_events)
        skel.attach()
        print(header(a), flush=True)
        poll_perf(pb, a.duration)


def main(argv: list[str] | None = None) -> int:
    return main_of("tcplife", parse_args, run, argv)


if __name__ == "__main__":
    sys.exit(main())
