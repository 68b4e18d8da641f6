"""The examples, live: every field of every record equals what the program wrote.

``make -C examples`` builds the BPF objects and skeletons once per session.  The
packet sampler runs on a veth pair whose far end sits in a network namespace
created here (only addresses inside that pair are used).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.attach_progs import netns_veth
from tests.helpers.build import ROOT
from tests.helpers.lint import mypy_strict, ruff
from tests.helpers.runtime_zoo import load_or_skip

EXAMPLES = ROOT / "examples"
PID = os.getpid()
COMM = Path("/proc/self/comm").read_bytes().strip()[:15]


@pytest.fixture(scope="session")
def examples() -> dict[str, ModuleType]:
    """Build the examples and import their consumer modules."""
    r = subprocess.run(["make", "-s", "-C", str(EXAMPLES),
                        f"PYTHON={sys.executable}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sys.path.insert(0, str(EXAMPLES))
    import execsnoop
    import opensnoop
    import pktsample
    return {"execsnoop": execsnoop, "opensnoop": opensnoop, "pktsample": pktsample}


def poll_until(pb: Any, done: Callable[[], bool], tries: int = 100) -> None:
    for _ in range(tries):
        if done():
            return
        pb.poll(20)
    assert done(), "records did not arrive"


@pytest.mark.slow
@pytest.mark.live
def test_execsnoop_records(examples: dict[str, ModuleType]) -> None:
    mod = examples["execsnoop"]
    skel_mod = sys.modules["execsnoop_skel"]

    def make() -> Any:
        skel = skel_mod.ExecsnoopSkel.open()
        skel.rodata.targ_ppid = PID
        skel.load()
        return skel

    with load_or_skip(make) as skel:
        got: list[Any] = []
        pb = skel.maps.events.open_perf_buffer(lambda cpu, e: got.append(e))
        skel.attach()
        t0 = time.monotonic_ns()
        argvs = [["/bin/true", f"arg-{i}", "x" * (i * 20)][: 1 + i % 3] for i in range(6)]
        argvs.append(["/bin/true", *[f"a{j}" for j in range(9)]])  # more than MAX_ARGS
        pids = []
        for argv in argvs:
            p = subprocess.Popen(argv)
            pids.append(p.pid)
            p.wait()
        poll_until(pb, lambda: len(got) >= len(argvs))
        t1 = time.monotonic_ns()
    got.sort(key=lambda e: e.seq)  # per-CPU buffers: arrival order is not program order
    assert [e.seq for e in got] == list(range(len(argvs)))
    for e, argv, pid in zip(got, argvs, pids, strict=True):
        assert isinstance(e, skel_mod.Event)
        assert (e.pid, e.ppid, e.uid) == (pid, PID, 0)
        assert e.comm == COMM  # exec not done yet: the forked child's name
        assert e.filename == b"/bin/true"
        want = [a.encode()[:63] for a in argv[:6]]
        assert e.args_count == len(want)
        assert e.argv == want + [b""] * (6 - len(want))
        assert t0 <= e.ts_ns <= t1
    assert [e.ts_ns for e in got] == sorted(e.ts_ns for e in got)
    assert "/bin/true arg-1" in mod.format_event(got[1])


@pytest.mark.live
def test_opensnoop_records_and_filters(examples: dict[str, ModuleType], tmp_path: Path) -> None:
    mod = examples["opensnoop"]
    with load_or_skip(lambda: mod.open_tracer(pid=PID)) as skel:
        assert skel.rodata.targ_pid == PID and skel.rodata.targ_uid == mod.ANY_UID
        got: list[Any] = []
        pb = skel.maps.events.open_perf_buffer(lambda cpu, e: got.append(e))
        skel.attach()
        cases = []
        for i in range(8):
            path = str(tmp_path / f"open-{i}")
            flags = os.O_RDWR | os.O_CREAT | (os.O_TRUNC if i % 2 else os.O_APPEND)
            mode = 0o600 + i
            fd = os.open(path, flags, mode)
            os.close(fd)
            cases.append((path, flags | os.O_CLOEXEC, mode, fd))
        missing = str(tmp_path / "no" / "such")
        with pytest.raises(FileNotFoundError):
            os.open(missing, os.O_RDONLY)
        cases.append((missing, os.O_RDONLY | os.O_CLOEXEC, 0, -2))  # -ENOENT
        poll_until(pb, lambda: len(got) >= len(cases))
        assert list(skel.maps.start.keys()) == []  # every entry paired and deleted
        assert skel.bss.missed_entries == 0
    got.sort(key=lambda e: e.seq)
    assert [e.seq for e in got] == list(range(len(got)))  # nothing missing
    ours = [e for e in got if e.fname.startswith(str(tmp_path).encode())]
    assert len(ours) == len(cases)
    tid = threading.get_native_id()
    for e, (path, flags, mode, ret) in zip(ours, cases, strict=True):
        assert isinstance(e, sys.modules["opensnoop_skel"].Event)
        assert (e.pid, e.tid, e.uid) == (PID, tid, 0)
        assert e.fname == path.encode() and e.comm == COMM
        assert (e.ret, e.flags, e.mode) == (ret, flags, mode)
    assert mod.format_event(ours[-1]).split()[4] == "2"  # ERR column: ENOENT

    # the uid filter: nothing from root when only uid 12345 is wanted
    with mod.open_tracer(pid=0, uid=12345) as skel:
        got2: list[Any] = []
        pb = skel.maps.events.open_perf_buffer(lambda cpu, e: got2.append(e))
        skel.attach()
        os.close(os.open(str(tmp_path / "open-0"), os.O_RDONLY))
        pb.poll(50)
        assert got2 == [] and skel.bss.seq == 0


@pytest.fixture
def veth_pair() -> Iterator[tuple[str, str, str]]:
    """A veth pair: our end here (no address), its peer in a new netns with
    10.251.0.1/24 and a static neighbour 10.251.0.2 at our end's MAC."""
    with netns_veth("ex") as (ns, here, there):
        mac = Path(f"/sys/class/net/{here}/address").read_text().strip()
        for args in (["addr", "add", "10.251.0.1/24", "dev", there],
                     ["neigh", "add", "10.251.0.2", "lladdr", mac, "dev", there]):
            subprocess.run(["ip", "-n", ns, *args], check=True, capture_output=True)
        yield ns, here, there


SENDER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.251.0.1", 4242))
for i in range(int(sys.argv[1])):
    s.sendto(b"btfgen-%03d:" % i + bytes(range(256)) * i, ("10.251.0.2", 9999))
"""


@pytest.mark.live
def test_pktsample_struct_plus_packet_bytes(examples: dict[str, ModuleType],
                                            veth_pair: tuple[str, str, str]) -> None:
    mod = examples["pktsample"]
    ns, here, there = veth_pair
    ifindex = int(Path(f"/sys/class/net/{here}/ifindex").read_text())
    mac_here = bytes.fromhex(Path(f"/sys/class/net/{here}/address").read_text().replace(":", ""))
    with load_or_skip(mod.load_sampler) as skel:
        got: list[Any] = []
        pb = skel.maps.samples.open_perf_buffer(lambda cpu, s: got.append(s), payload=True)
        skel.progs.sample.attach_xdp(here)
        n = 6
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, str(n)],
                       check=True)
        poll_until(pb, lambda: sum(1 for s in got if s.record.eth_proto == 0x0800) >= n)
        assert skel.bss.seq == skel.bss.seen  # sample_every = 1
    got.sort(key=lambda s: s.record.seq)
    meta_cls = sys.modules["pktsample_skel"].PktMeta
    assert [s.record.seq for s in got] == list(range(len(got)))
    udp = []
    for s in got:
        m = s.record
        assert isinstance(m, meta_cls)
        assert m.ifindex == ifindex
        assert m.cap_len == min(m.pkt_len, 256)
        frame = mod.packet_bytes(s)
        assert len(frame) == m.cap_len and len(s.payload) - m.cap_len < 8  # then padding
        assert m.eth_proto == int.from_bytes(frame[12:14], "big")
        if m.eth_proto == 0x0800 and frame[23] == socket.IPPROTO_UDP:
            udp.append((m, frame))
    assert len(udp) == n
    for i, (m, frame) in enumerate(udp):
        body = b"btfgen-%03d:" % i + bytes(range(256)) * i
        assert m.pkt_len == 14 + 20 + 8 + len(body)
        assert frame[:6] == mac_here
        src, dst = frame[26:30], frame[30:34]
        assert (socket.inet_ntoa(src), socket.inet_ntoa(dst)) == ("10.251.0.1", "10.251.0.2")
        sport, dport, ulen = struct.unpack_from("!HHH", frame, 34)
        assert (sport, dport, ulen) == (4242, 9999, 8 + len(body))
        assert frame[42:] == body[: m.cap_len - 42]
    assert "proto=0x0800" in mod.format_sample(got[-1]) or got


@pytest.mark.slow
@pytest.mark.live
def test_make_demo_prints_typed_events() -> None:
    r = subprocess.run([sys.executable, str(EXAMPLES / "demo.py")],
                       capture_output=True, text=True, timeout=60)
    if r.returncode and "refuse" in r.stderr:
        pytest.skip(r.stderr.strip())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/bin/echo hello from btfgen" in r.stdout
    assert "Event(seq=" in r.stdout and "4 events for 4 commands" in r.stdout


@pytest.mark.slow
def test_example_scripts_pass_ruff_and_mypy(examples: dict[str, ModuleType]) -> None:
    files = [str(EXAMPLES / f) for f in ("execsnoop.py", "opensnoop.py", "pktsample.py",
                                         "demo.py")]
    r = ruff(files)
    assert r.returncode == 0, r.stdout + r.stderr
    env = dict(os.environ, MYPYPATH=str(EXAMPLES))
    r = mypy_strict(files, follow_imports="normal", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
