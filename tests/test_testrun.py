"""Program.test_run (BPF_PROG_TEST_RUN) with typed contexts, and the pytest plugin."""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import BpfError, RuntimeBpfError
from btfgen.runtime._libbpf import ffi
from tests.helpers.build import ROOT
from tests.helpers.runtime_zoo import load_or_skip
from tests.helpers.waiting import wait_in_syscall

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def example() -> ModuleType:
    r = subprocess.run(["make", "-s", "-C", str(EXAMPLES), "pktfilter_skel.py",
                        f"PYTHON={ROOT / '.venv' / 'bin' / 'python'}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    sys.path.insert(0, str(EXAMPLES))
    import test_pktfilter
    return test_pktfilter


@pytest.fixture
def skel(example: ModuleType) -> Iterator[Any]:
    s = load_or_skip(example.PktfilterSkel.open_and_load)
    yield s
    s.destroy()


def test_declarations_combine() -> None:
    import btfgen.runtime.testrun  # noqa: F401 - registers its cdef

    real = ffi.real()
    assert real.sizeof("struct bpf_test_run_opts") == 80


@pytest.mark.live
def test_example_tests_pass_through_the_plugin(example: ModuleType) -> None:
    # The documented example test, run as a user would: pytest finds bpf_skel
    # through the pytest11 entry point.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        str(EXAMPLES / "test_pktfilter.py")], capture_output=True, text=True,
                       cwd=str(EXAMPLES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "7 passed" in r.stdout


@pytest.mark.live
def test_verdicts_data_and_typed_ctx(example: ModuleType, skel: Any) -> None:
    pkt = example.packet(socket.IPPROTO_TCP, 22)
    r = skel.progs.tc_mark.test_run(pkt, ctx=example.SkBuff(priority=5))
    assert (r.retval, r.data_out) == (example.TC_ACT_OK, pkt)
    assert type(r.ctx_out) is example.SkBuff
    assert (r.ctx_out.mark, r.ctx_out.priority) == (0x42, 5)
    # the same with a raw ctx: bytes come back
    raw = skel.progs.tc_mark.test_run(pkt, ctx=example.SkBuff().to_bytes())
    assert isinstance(raw.ctx_out, bytes) and example.SkBuff.from_bytes(raw.ctx_out).mark == 0x42
    # no ctx: none back
    assert skel.progs.xdp_filter.test_run(pkt).ctx_out is None
    retval, data_out, ctx_out, duration = skel.progs.xdp_filter.test_run(
        example.packet(socket.IPPROTO_UDP, 9))
    assert (retval, ctx_out) == (example.XDP_DROP, None) and duration >= 0


@pytest.mark.live
def test_errors_are_one_sentence(example: ModuleType, skel: Any) -> None:
    pkt = example.packet(socket.IPPROTO_UDP, 7)
    with pytest.raises(BpfError) as ei:
        skel.progs.xdp_filter.test_run(pkt, data_out_size=10)
    assert ei.value.errno == errno.ENOSPC and "data_out_size=10 is too small" in str(ei.value)
    with pytest.raises(TypeError, match="ctx must be bytes or a generated record"):
        skel.progs.tc_mark.test_run(pkt, ctx=object())
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        skel.progs.tc_mark.test_run(pkt, repeat=0)
    with pytest.raises(BpfError) as ei:  # a ctx field tc programs may not set
        skel.progs.tc_mark.test_run(pkt, ctx=example.SkBuff(pkt_type=3))
    assert ei.value.errno == errno.EINVAL and "refuses" in str(ei.value)


def test_not_loaded(example: ModuleType) -> None:
    s = example.PktfilterSkel.open()
    try:
        with pytest.raises(RuntimeBpfError, match="not loaded yet"):
            s.progs.xdp_filter.test_run(b"x" * 64)
    finally:
        s.destroy()


@pytest.mark.live
def test_threads_and_fork(example: ModuleType, skel: Any) -> None:
    # Each call owns its buffers: concurrent runs from threads and a forked child
    # each get their own packet's verdict and output.
    import os
    import threading

    cases = [(example.packet(socket.IPPROTO_UDP, 9), example.XDP_DROP),
             (example.packet(socket.IPPROTO_UDP, 7), example.XDP_TX),
             (example.packet(socket.IPPROTO_TCP, 80), example.XDP_PASS)]
    errors: list[str] = []

    def worker(i: int) -> None:
        pkt, want = cases[i % 3]
        for _ in range(200):
            r = skel.progs.xdp_filter.test_run(pkt)
            if r.retval != want or len(r.data_out) != len(pkt):
                errors.append(f"thread {i}: {r.retval} != {want}")
                return

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    pid = os.fork()
    if pid == 0:
        pkt, want = cases[1]
        ok = skel.progs.xdp_filter.test_run(pkt).retval == want
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert skel.progs.xdp_filter.test_run(cases[0][0]).retval == example.XDP_DROP


@pytest.mark.live
def test_ctx_types_from_vmlinux(example: ModuleType, skel: Any, tmp_path: Any) -> None:
    # An object that does not carry struct __sk_buff: the record comes from the
    # kernel's own BTF, generated with --type.
    from tests.helpers.build import run_btfgen
    from tests.helpers.gen import load

    out = tmp_path / "kctx.py"
    run_btfgen("gen", "/sys/kernel/btf/vmlinux", "--type", "struct __sk_buff", "-o", out,
               check=True)
    SkBuff = load(out).SkBuff
    r = skel.progs.tc_mark.test_run(example.packet(socket.IPPROTO_TCP, 1), ctx=SkBuff(mark=1))
    assert type(r.ctx_out) is SkBuff and r.ctx_out.mark == 0x42
    assert r.ctx_out.wire_len == len(example.packet(socket.IPPROTO_TCP, 1))  # set by the kernel


@pytest.mark.live
def test_ctrl_c_interrupts_a_long_run(example: ModuleType) -> None:
    # A long repeat loop in the kernel ends on SIGINT as KeyboardInterrupt (not an
    # EINTR error, not a hang); a signal with a Python handler restarts the run.
    code = f"""
import signal, socket, sys, time
sys.path.insert(0, {str(EXAMPLES)!r})
import test_pktfilter as t
skel = t.PktfilterSkel.open_and_load()
pkt = t.packet(socket.IPPROTO_UDP, 9)
hits = []
signal.signal(signal.SIGALRM, lambda *a: hits.append(2))
signal.setitimer(signal.ITIMER_REAL, 0.02)
t0 = time.monotonic()
r = skel.progs.xdp_filter.test_run(pkt, repeat=3_000_000)
assert r.retval == t.XDP_DROP and hits == [2], (r, hits, time.monotonic() - t0)
print("ok", flush=True)
try:
    skel.progs.xdp_filter.test_run(pkt, repeat=1 << 30)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""
    p = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", code],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ok"
    # SIGINT once the child is inside the run (the bpf syscall), not after a fixed time
    wait_in_syscall(p.pid, p.pid, ("bpf",))
    p.send_signal(2)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert out.strip() == "interrupted"
