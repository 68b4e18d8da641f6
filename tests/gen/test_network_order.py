"""Fields whose BTF type is the ``__be16``/``__be32``/``__be64`` typedef decode to
host values and encode back (an address or port comes out as the number it
is); ``__le*`` and plain integers keep the object's byte order."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.build import compile_bpf
from tests.helpers.gen import generate
from tests.helpers.runtime_zoo import load_or_skip

SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
char LICENSE[] SEC("license") = "GPL";
typedef __be32 addr_t;                   /* a typedef of the typedef counts too */
struct flow {
    __be16 sport;
    __be16 dport;
    addr_t saddr;
    __be32 daddr6[4];
    __be64 cookie;
    __le32 le;
    __u32 plain;
    const __be16 cport;
};
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, __be32);
         __type(value, struct flow); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
int target_pid;

SEC("tracepoint/syscalls/sys_enter_getppid")
int handle(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
        return 0;
    struct flow *f = bpf_ringbuf_reserve(&rb, sizeof(*f), 0);
    if (!f)
        return 0;
    __builtin_memset(f, 0, sizeof(*f));
    f->sport = bpf_htons(8080);
    f->dport = bpf_htons(443);
    f->saddr = bpf_htonl(0x7f000001);
    f->daddr6[3] = bpf_htonl(1);
    f->cookie = bpf_cpu_to_be64(0x0102030405060708ULL);
    f->le = 0x11223344;
    f->plain = 0x55667788;
    bpf_ringbuf_submit(f, 0);
    return 0;
}
"""


def flow_bytes(order: str) -> bytes:
    """A ``struct flow`` as the kernel of byte order ``order`` would hold it."""
    e = "<" if order == "little" else ">"
    return (struct.pack(">HHI", 8080, 443, 0x7F000001) + struct.pack(">4I", 0, 0, 0, 1)
            + struct.pack(">Q", 0x0102030405060708) + struct.pack(e + "II", 0x11223344,
                                                                   0x55667788)
            + struct.pack(">H", 22) + bytes(6))


@pytest.mark.parametrize("clang", ["clang", "clang-19"])
@pytest.mark.parametrize("target, order", [("bpfel", "little"), ("bpfeb", "big")])
def test_be_fields_decode_to_host_values(tmp_path: Path, clang: str, target: str,
                                         order: str) -> None:
    obj = compile_bpf(SRC, tmp_path / "net.bpf.o", clang=clang, target=target)
    mod = generate(obj, tmp_path / "net_skel.py", name="net")
    Flow = mod.TYPES["struct flow"]
    raw = flow_bytes(order)
    assert Flow.SIZE == len(raw)
    f = Flow.from_bytes(raw)
    assert (f.sport, f.dport, f.saddr, f.daddr6, f.cookie) == (
        8080, 443, 0x7F000001, [0, 0, 0, 1], 0x0102030405060708)
    assert (f.le, f.plain, f.cport) == (0x11223344, 0x55667788, 22)
    assert socket.inet_ntoa(f.saddr.to_bytes(4, "big")) == "127.0.0.1"
    assert f.to_bytes() == raw
    assert Flow(sport=8080, dport=443, saddr=0x7F000001, daddr6=[0, 0, 0, 1],
                cookie=0x0102030405060708, le=0x11223344, plain=0x55667788,
                cport=22).to_bytes() == raw
    # a bare __be32 (the map key) goes through a big-endian codec
    src = (tmp_path / "net_skel.py").read_text()
    assert '_codec.IntCodec(">I")' in src


@pytest.mark.live
def test_be_fields_live(tmp_path: Path) -> None:
    obj = compile_bpf(SRC, tmp_path / "net.bpf.o")
    mod = generate(obj, tmp_path / "net_skel.py", name="net")
    skel = mod.NetSkel.open()
    got: list[Any] = []
    try:
        skel.bss.target_pid = os.getpid()
        load_or_skip(skel.load)
        skel.attach()
        key = 0x0A000001
        skel.maps.flows.update(key, mod.TYPES["struct flow"](sport=53))
        assert skel.maps.flows.lookup(key).sport == 53
        rb = skel.maps.rb.open_ring_buffer(got.append)
        os.getppid()
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            rb.poll(20)
        rb.close()
    finally:
        skel.destroy()
    (f,) = got
    assert (f.sport, f.dport, f.saddr, f.daddr6[3], f.cookie) == (
        8080, 443, 0x7F000001, 1, 0x0102030405060708)
    assert (f.le, f.plain) == (0x11223344, 0x55667788)
