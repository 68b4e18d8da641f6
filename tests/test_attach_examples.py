"""The attach examples, live: the uprobe tracer on a binary built here, and the
tc sampler on a veth pair whose peer sits in a network namespace made here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.attach_progs import netns_veth, target_binary
from tests.helpers.build import ROOT
from tests.helpers.runtime_zoo import load_or_skip
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.live
EXAMPLES = ROOT / "examples"
PID = os.getpid()
PY = sys.executable


def uprobes_of(pid: int) -> int:
    """How many uprobes/uretprobes process ``pid`` has attached (bpftool perf list)."""
    out = subprocess.run(["bpftool", "perf", "list", "-j"], capture_output=True, text=True,
                         check=True).stdout
    return sum(1 for e in json.loads(out or "[]")
               if e.get("pid") == pid and e.get("fd_type") in ("uprobe", "uretprobe"))


@pytest.fixture(scope="module")
def examples() -> dict[str, ModuleType]:
    r = subprocess.run(["make", "-s", "-C", str(EXAMPLES), f"PYTHON={PY}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sys.path.insert(0, str(EXAMPLES))
    import tcsample
    import uprobetrace
    return {"tcsample": tcsample, "uprobetrace": uprobetrace}


def test_uprobetrace_cli_traces_calls(examples: dict[str, ModuleType],
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    exe = target_binary(tmp_path_factory)
    p = subprocess.Popen([PY, str(EXAMPLES / "uprobetrace.py"), str(exe), "traced",
                          "--duration", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    # run the target once both probes are in (not after a fixed time: slow under load)
    probes = wait_for(lambda: uprobes_of(p.pid), lambda n: n >= 2 or p.poll() is not None)
    assert probes >= 2, p.communicate(timeout=30)
    child = subprocess.run([str(exe), "4"], capture_output=True, check=True)
    first = [p.stdout.readline() for _ in range(4)]  # then Ctrl-C, not the whole minute
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    out = "".join(first) + out
    assert p.returncode == 0, err
    lines = [ln.split() for ln in out.splitlines()]
    assert len(lines) == 4, out
    for i, f in enumerate(lines):
        assert f[2] == "target" and f[3] == f"arg={i:#x}" and f[4] == f"ret={3 * i + 1}"
    assert child.stdout.strip() == str(sum(3 * i + 1 for i in range(4))).encode()


def test_uprobetrace_in_process_and_its_errors(examples: dict[str, ModuleType],
                                               tmp_path_factory: pytest.TempPathFactory) -> None:
    mod = examples["uprobetrace"]
    exe = target_binary(tmp_path_factory)
    with load_or_skip(lambda: mod.open_tracer(str(exe), "traced")) as skel:
        got: list[Any] = []
        rb = skel.maps.calls.open_ring_buffer(got.append)
        subprocess.run([str(exe), "2"], check=True, capture_output=True)
        for _ in range(50):
            if len(got) == 2:
                break
            rb.poll(20)
        assert [(c.arg, c.ret) for c in got] == [(0, 1), (1, 4)]
        assert all(c.duration_ns > 0 and c.comm == b"target" for c in got)
    r = subprocess.run([PY, str(EXAMPLES / "uprobetrace.py"), str(exe), "no_such_func"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.startswith("uprobetrace: program enter: attach uprobe ")
    assert len(r.stderr.splitlines()) == 1


@pytest.fixture
def veth() -> Iterator[tuple[str, str, str]]:
    with netns_veth("sample", ("10.252.0.2/24", "10.252.0.1/24")) as names:
        yield names


def test_tcsample_both_directions(examples: dict[str, ModuleType],
                                  veth: tuple[str, str, str]) -> None:
    mod = examples["tcsample"]
    ns, here, _ = veth
    idx = socket.if_nametoindex(here)
    with load_or_skip(lambda: mod.open_sampler(here)) as skel:
        got: list[Any] = []
        pb = skel.maps.samples.open_perf_buffer(lambda cpu, s: got.append(s), payload=True)
        # a UDP echo over the veth: our datagram leaves (egress), the reply arrives (ingress)
        echo = subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c",
                                 "import socket; s = socket.socket(2, 2); "
                                 "s.bind(('10.252.0.1', 7777)); d, a = s.recvfrom(100); "
                                 "s.sendto(d.upper(), a)"])
        time.sleep(0.3)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for _ in range(20):
                s.sendto(b"btfgen-tc-sample", ("10.252.0.1", 7777))
                try:
                    assert s.recv(100) == b"BTFGEN-TC-SAMPLE"
                    break
                except TimeoutError:
                    continue
        echo.wait(timeout=10)
        for _ in range(20):
            pb.poll(20)
        got.sort(key=lambda s: s.record.seq)  # per-CPU buffers: arrival order is not seq order
        udp = [s for s in got if s.record.protocol == 0x0800 and s.payload[23] == 17
               and s.payload[42:58].upper() == b"BTFGEN-TC-SAMPLE"]
        # the datagram left (egress), the echo came back (ingress), in that order
        assert [(s.record.ingress, s.payload[42:58]) for s in udp] == [
            (0, b"btfgen-tc-sample"), (1, b"BTFGEN-TC-SAMPLE")], [mod.format_sample(s) for s in got]
        for s in got:
            m = s.record
            assert m.ifindex == idx and m.cap_len == min(m.pkt_len, 128)
            assert len(s.payload) - m.cap_len < 8
        line = mod.format_sample(udp[0])
        assert f"if={idx}" in line and "proto=0x0800" in line
    r = subprocess.run([PY, str(EXAMPLES / "tcsample.py"), "btfgen-nonexistent"],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (1, "tcsample: no network interface named "
                                           "'btfgen-nonexistent'\n")
