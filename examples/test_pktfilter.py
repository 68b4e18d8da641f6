"""Unit tests of a BPF packet filter, in Python, with no network at all.

``make`` here builds ``pktfilter_skel.py`` (with ``--type "struct __sk_buff"
--type "struct xdp_md"``); then, as root: ``python -m pytest test_pktfilter.py``.
btfgen's pytest plugin gives ``bpf_skel``: ``BPF_SKELETON`` loaded once for
this module.  Each test crafts a packet and runs one program on it with
``Program.test_run`` (``BPF_PROG_TEST_RUN``): the verdict, the packet the program
left and the typed context come back.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pktfilter_skel import PktfilterSkel, SkBuff, XdpMd  # noqa: E402

BPF_SKELETON = PktfilterSkel

XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3
TC_ACT_OK, TC_ACT_SHOT = 0, 2
PASS, DROP, ECHO, MARK = range(4)

MAC_A, MAC_B = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def packet(proto: int, dport: int, payload: bytes = b"hello") -> bytes:
    """Ethernet + IPv4 + a UDP (17) or TCP (6) header to ``dport``."""
    if proto == socket.IPPROTO_UDP:
        l4 = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0)
    else:
        l4 = struct.pack("!HHIIBBHHH", 40000, dport, 1, 0, 5 << 4, 0x02, 1024, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4) + len(payload), 1, 0, 64, proto,
                     0, socket.inet_aton("10.0.0.1"), socket.inet_aton("10.0.0.2"))
    return MAC_B + MAC_A + struct.pack("!H", 0x0800) + ip + l4 + payload


def counts(skel: Any) -> list[int]:
    return [sum(skel.maps.verdicts[i]) for i in range(4)]


def test_xdp_drops_discard(bpf_skel: Any) -> None:
    before = counts(bpf_skel)
    r = bpf_skel.progs.xdp_filter.test_run(packet(socket.IPPROTO_UDP, 9))
    assert r.retval == XDP_DROP
    assert counts(bpf_skel)[DROP] == before[DROP] + 1


def test_xdp_echo_swaps_macs(bpf_skel: Any) -> None:
    pkt = packet(socket.IPPROTO_UDP, 7)
    r = bpf_skel.progs.xdp_filter.test_run(pkt)
    assert r.retval == XDP_TX
    assert r.data_out == MAC_A + MAC_B + pkt[12:]


def test_xdp_repeat_counts_every_run(bpf_skel: Any) -> None:
    # (XDP runs repeat on the same buffer: an odd number of swaps leaves one swap)
    before = counts(bpf_skel)
    r = bpf_skel.progs.xdp_filter.test_run(packet(socket.IPPROTO_UDP, 7), repeat=101)
    assert r.retval == XDP_TX and r.data_out[:12] == MAC_A + MAC_B
    assert counts(bpf_skel)[ECHO] == before[ECHO] + 101
    assert r.duration_ns > 0


def test_xdp_passes_tcp_with_typed_ctx(bpf_skel: Any) -> None:
    pkt = packet(socket.IPPROTO_TCP, 80)
    r = bpf_skel.progs.xdp_filter.test_run(pkt, ctx=XdpMd(data=0, data_end=len(pkt)))
    assert r.retval == XDP_PASS and r.data_out == pkt
    assert isinstance(r.ctx_out, XdpMd) and r.ctx_out.data_end - r.ctx_out.data == len(pkt)


def test_tc_marks_tcp(bpf_skel: Any) -> None:
    r = bpf_skel.progs.tc_mark.test_run(packet(socket.IPPROTO_TCP, 443), ctx=SkBuff())
    assert r.retval == TC_ACT_OK
    assert isinstance(r.ctx_out, SkBuff) and r.ctx_out.mark == 0x42


def test_tc_shoots_discard_and_keeps_ctx(bpf_skel: Any) -> None:
    r = bpf_skel.progs.tc_mark.test_run(packet(socket.IPPROTO_UDP, 9),
                                        ctx=SkBuff(mark=7, priority=3))
    assert r.retval == TC_ACT_SHOT
    assert (r.ctx_out.mark, r.ctx_out.priority) == (7, 3)


def test_socket_filter_keeps_udp_only(bpf_skel: Any) -> None:
    udp, tcp = packet(socket.IPPROTO_UDP, 53), packet(socket.IPPROTO_TCP, 53)
    assert bpf_skel.progs.sock_udp_only.test_run(udp).retval == len(udp) - 14  # without Ethernet
    assert bpf_skel.progs.sock_udp_only.test_run(tcp).retval == 0
