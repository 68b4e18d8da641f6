"""Network attach methods against the kernel: tc ingress/egress with a struct +
packet payload through a perf buffer, XDP modes, cgroup, socket filter, netns.

The veth pair has this process's pid in its names; its far end lives in a
network namespace made here, so nothing else sees the test's frames.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import BpfError
from btfgen.runtime.errors import RuntimeBpfError
from tests.helpers.attach_progs import attach_module, netns_veth, open_skel

pytestmark = pytest.mark.live
PID = os.getpid()
ETH_P_TEST = 0x88B5  # IEEE local experimental ethertype: the tc program only reports these


@pytest.fixture(scope="module")
def attach_mod(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return attach_module(tmp_path_factory)


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    """``bta<pid>a`` here, its peer ``bta<pid>b`` in netns ``btfgen-attach-<pid>``."""
    with netns_veth("attach") as names:
        yield names


def frame(i: int, size: int) -> bytes:
    """An Ethernet frame of our test ethertype, ``size`` bytes long."""
    head = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + ETH_P_TEST.to_bytes(2, "big")
    body = b"btfgen-%03d:" % i
    return head + body + bytes(range(256))[: size - len(head) - len(body)]


SEND = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
for data in sys.argv[2:]:
    s.send(bytes.fromhex(data))
"""


def send_frames(ifname: str, frames: list[bytes], netns: str | None = None) -> None:
    cmd = [sys.executable, "-c", SEND, ifname, *(f.hex() for f in frames)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    subprocess.run(cmd, check=True)


def qdiscs(ifname: str) -> list[str]:
    out = subprocess.run(["tc", "-j", "qdisc", "show", "dev", ifname], capture_output=True,
                         text=True, check=True).stdout
    return [q["kind"] for q in json.loads(out or "[]")]


def poll_until(pb: Any, done: Callable[[], bool]) -> None:
    for _ in range(100):
        if done():
            return
        pb.poll(20)


def test_tc_ingress_and_egress_struct_plus_packet(attach_mod: ModuleType,
                                                  veth: tuple[str, str, str]) -> None:
    ns, here, there = veth
    idx = socket.if_nametoindex(here)
    with open_skel(attach_mod) as skel:
        got: list[Any] = []
        pb = skel.maps.tc_events.open_perf_buffer(lambda cpu, s: got.append(s), payload=True)
        ing = skel.progs.on_tc.attach_tc(here)
        egr = skel.progs.on_tc.attach_tc(idx, direction="egress", priority=2, handle=7)
        assert "clsact" in qdiscs(here) and skel.links.on_tc == [ing, egr]
        incoming = [frame(i, 60 + 13 * i) for i in range(3)]
        outgoing = [frame(10 + i, 100 + i) for i in range(2)]
        send_frames(there, incoming, netns=ns)  # arrives on `here`: ingress
        send_frames(here, outgoing)  # leaves through `here`: egress
        poll_until(pb, lambda: len(got) >= 5)
        assert skel.bss.tc_seq == 5
        got.sort(key=lambda s: s.record.seq)
        assert [s.record.seq for s in got] == list(range(5))
        seen_in = [s for s in got if s.record.ingress_ifindex == idx]
        seen_out = [s for s in got if s.record.ingress_ifindex == 0]
        for samples, frames in ((seen_in, incoming), (seen_out, outgoing)):
            assert len(samples) == len(frames)
            for s, f in zip(samples, frames, strict=True):
                m = s.record
                assert isinstance(m, attach_mod.PktMeta)
                assert (m.ifindex, m.len_, m.cap) == (idx, len(f), min(len(f), 64))
                assert s.payload[: m.cap] == f[: m.cap] and len(s.payload) - m.cap < 8
        ing.destroy()
        assert "clsact" in qdiscs(here)  # the egress link still needs it
        got.clear()
        send_frames(there, incoming[:1], netns=ns)
        send_frames(here, outgoing[:1])
        poll_until(pb, lambda: len(got) >= 1)
        pb.poll(50)
        assert [s.record.ingress_ifindex for s in got] == [0]  # only egress now
    assert "clsact" not in qdiscs(here)  # made by us: removed with the last link


def test_tc_keeps_a_clsact_it_did_not_make(attach_mod: ModuleType,
                                           veth: tuple[str, str, str]) -> None:
    _, here, _ = veth
    subprocess.run(["tc", "qdisc", "add", "dev", here, "clsact"], check=True)
    with open_skel(attach_mod) as skel:
        link = skel.progs.on_tc.attach_tc(here, direction="egress")
        out = subprocess.run(["tc", "filter", "show", "dev", here, "egress"],
                             capture_output=True, text=True, check=True).stdout
        assert "on_tc" in out
        link.destroy()
        out = subprocess.run(["tc", "filter", "show", "dev", here, "egress"],
                             capture_output=True, text=True, check=True).stdout
        assert "on_tc" not in out
    assert "clsact" in qdiscs(here)
    with open_skel(attach_mod) as skel, pytest.raises(ValueError, match="direction"):
        skel.progs.on_tc.attach_tc(here, direction="sideways")
    with open_skel(attach_mod) as skel, pytest.raises(RuntimeBpfError, match="no network"):
        skel.progs.on_tc.attach_tc("btfgen-nonexistent")


def xdp_mode(ifname: str) -> str | None:
    out = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", ifname], capture_output=True,
                         text=True, check=True).stdout
    xdp = json.loads(out)[0].get("xdp")
    return None if xdp is None else str(xdp.get("mode"))


def test_xdp_modes_by_name(attach_mod: ModuleType, veth: tuple[str, str, str]) -> None:
    _, here, _ = veth
    with open_skel(attach_mod) as skel:
        prog = skel.progs.on_xdp
        for mode, shown in (("skb", "2"), ("generic", "2"), ("native", "1"), (None, "1")):
            link = prog.attach_xdp(here, mode=mode)
            assert link.fd > 0 and xdp_mode(here) == shown, mode
            link.destroy()
            assert xdp_mode(here) is None
        with pytest.raises(ValueError, match="mode must be one of"):
            prog.attach_xdp(here, mode="turbo")


CGROUP2 = next((p for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                if os.path.exists(os.path.join(p, "cgroup.procs"))
                and os.path.exists(os.path.join(p, "cgroup.controllers"))), None)

CHILD = """
import socket, sys
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
except PermissionError:
    sys.exit(3)
"""


def test_cgroup_sock_create_on_a_fresh_cgroup(attach_mod: ModuleType) -> None:
    if CGROUP2 is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    cg = Path(CGROUP2) / f"btfgen-test-{PID}"
    cg.mkdir()

    def run_in_cgroup() -> int:
        def enter() -> None:
            (cg / "cgroup.procs").write_text(str(os.getpid()))
        return subprocess.run([sys.executable, "-S", "-c", CHILD], preexec_fn=enter).returncode

    try:
        with open_skel(attach_mod) as skel:
            link = skel.progs.on_sock_create.attach_cgroup(cg)
            assert link.fd > 0
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()  # not in the cgroup
            assert skel.bss.sock_created == 0
            assert run_in_cgroup() == 0 and skel.bss.sock_created == 1
            skel.bss.deny_sockets = 1
            assert run_in_cgroup() == 3 and skel.bss.sock_created == 2  # refused by the program
            link.destroy()
            assert run_in_cgroup() == 0 and skel.bss.sock_created == 2
            with pytest.raises(RuntimeBpfError, match="cannot open"):
                skel.progs.on_sock_create.attach_cgroup(cg / "missing")
    finally:
        cg.rmdir()


def test_socket_filter_on_udp_socket_and_fd(attach_mod: ModuleType) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    try:
        with open_skel(attach_mod) as skel:
            link = skel.progs.on_socket.attach_socket(rx)
            for msg in (b"hello", b"Xdropped", b"world"):
                tx.sendto(msg, rx.getsockname())
            assert [rx.recv(100), rx.recv(100)] == [b"hello", b"world"]
            assert skel.bss.filtered == 3
            link.destroy()
            tx.sendto(b"Xkept", rx.getsockname())
            assert rx.recv(100) == b"Xkept" and skel.bss.filtered == 3
            skel.progs.on_socket.attach_socket(rx.fileno())
            tx.sendto(b"Xagain", rx.getsockname())
            tx.sendto(b"ok", rx.getsockname())
            assert rx.recv(100) == b"ok"
            with pytest.raises(RuntimeBpfError, match="not a socket"):
                skel.progs.on_socket.attach_socket(os.open("/dev/null", os.O_RDONLY))
    finally:
        rx.close()
        tx.close()


def test_netns_sk_lookup(attach_mod: ModuleType, veth: tuple[str, str, str]) -> None:
    ns = veth[0]
    with open_skel(attach_mod) as skel:
        link = skel.progs.on_sk_lookup.attach_netns(f"/run/netns/{ns}")
        info = Path(f"/proc/self/fdinfo/{link.fd}").read_text()
        assert "link_type:\tnetns" in info and "attach_type:\t" in info
        with pytest.raises(BpfError) as e:  # a socket filter cannot attach to a netns
            skel.progs.on_socket.attach_netns(f"/run/netns/{ns}")
        assert e.value.errno in (errno.EINVAL, errno.EOPNOTSUPP)
