"""Runtime faults through a generated skeleton, in the kernel: a callback that
raises, Ctrl-C during poll, destroy twice, use after destroy, poll from another
thread (and destroy while it polls), fork, and lost samples.

Each scenario runs in its own interpreter (a crash is a failure, not the end of
the test run) which reports as JSON: what happened, the fds it still holds and
the kernel objects (programs, maps, links; ids from /proc/self/fdinfo, checked
with ``bpftool ... list -j``) still alive after destroy.  Skips only when the
kernel refuses BPF, saying why.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.runtime_zoo import ZOO_SRC

pytestmark = pytest.mark.live

TESTS = Path(__file__).resolve().parent
CHECKOUT = TESTS.parent  # on sys.path of the harness: it imports tests.helpers

HARNESS = r'''
import gc, json, os, signal, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[3])
from tests.helpers.bpf_leaks import fd_ids, still_alive
from tests.helpers.scenario_util import interrupt_when_waiting, load_and_attach, load_module

mod = load_module(sys.argv[2], "zoo_skel")

PID = os.getpid()


def trigger(n):
    for _ in range(n):
        os.getppid()


def open_skel():
    skel = mod.ZooSkel.open()
    skel.rodata.target_pid = PID
    return load_and_attach(skel)


def drain(poll, have, want, rounds=60):
    for _ in range(rounds):
        if have() >= want:
            return
        poll(50)


def outcome(fn):
    try:
        fn()
    except BaseException as e:
        return f"{type(e).__name__}: {e}"
    return "no error"


def s_callback_raises(r):
    skel = open_skel()
    seen_perf, seen_ring = [], []

    def on_perf(cpu, rec):
        seen_perf.append(rec.seq)
        if rec.seq == 2:
            raise ValueError("perf callback failed")

    def on_ring(rec):
        seen_ring.append(rec.seq)
        if rec.seq in (1, 3):
            raise KeyError("ring callback failed")

    pb = skel.maps.events.open_perf_buffer(on_perf)
    rb = skel.maps.rb.open_ring_buffer(on_ring)
    trigger(6)
    r["perf_errors"], r["ring_errors"] = [], []
    for _ in range(40):
        for name, poll in (("perf", pb.poll), ("ring", rb.poll)):
            try:
                poll(20)
            except Exception as e:
                r[name + "_errors"].append(f"{type(e).__name__}: {e}")
        if len(seen_perf) >= 6 and len(seen_ring) >= 6:
            break
    r["perf_seqs"], r["ring_seqs"], r["lost"] = sorted(seen_perf), sorted(seen_ring), pb.lost
    r["ring_drained"] = rb.drained
    ours = {k: v - BASE[k] for k, v in fd_ids().items()}
    skel.destroy()
    r["alive"] = still_alive(ours)


def s_sigint(r):
    skel = open_skel()
    got = []
    pb = skel.maps.events.open_perf_buffer(lambda cpu, rec: got.append(rec.seq))
    rb = skel.maps.rb.open_ring_buffer(lambda rec: got.append(rec.seq))
    r["interrupts"] = []
    for poll in (pb.poll, rb.poll):
        # SIGINT once the poll sleeps in its wait (a fixed delay can come before it)
        killer = interrupt_when_waiting()
        try:
            poll(10000)
            r["interrupts"].append("poll returned")
        except KeyboardInterrupt:
            r["interrupts"].append(round(time.monotonic() - killer.sent_at, 2))
        killer.join()
    trigger(3)
    drain(lambda t: pb.poll(t) + rb.poll(t), lambda: len(got), 6)
    r["after"] = sorted(got)
    ours = {k: v - BASE[k] for k, v in fd_ids().items()}
    skel.destroy()
    r["alive"] = still_alive(ours)


def s_use_after_destroy(r):
    skel = open_skel()
    pb = skel.maps.events.open_perf_buffer(lambda cpu, rec: None)
    rb = skel.maps.rb.open_ring_buffer(lambda rec: None)
    trigger(2)
    pb.poll(10)
    rec = skel.maps.by_seq[0]
    ours = {k: v - BASE[k] for k, v in fd_ids().items()}
    skel.destroy()
    r["second_destroy"] = outcome(skel.destroy)
    with skel:
        pass  # leaving a with block after destroy is harmless
    ops = {
        "perf poll": lambda: pb.poll(10),
        "perf consume": pb.consume,
        "perf fileno": pb.fileno,
        "ring poll": lambda: rb.poll(10),
        "ring fileno": rb.fileno,
        "map lookup": lambda: skel.maps.by_seq[0],
        "map update": lambda: skel.maps.by_seq.update(0, rec),
        "map contains": lambda: 0 in skel.maps.by_seq,
        "map keys": lambda: list(skel.maps.by_seq.keys()),
        "bss read": lambda: skel.bss.bss_count,
        "bss write": lambda: setattr(skel.bss, "bss_count", 1),
        "data read": lambda: skel.data.data_value,
        "rodata read": lambda: skel.rodata.target_pid,
        "prog fd": lambda: skel.progs.handle.fd,
        "prog attach": skel.progs.handle.attach,
        "attach": skel.attach,
        "load": skel.load,
        "open perf buffer": lambda: skel.maps.events.open_perf_buffer(print),
        "open ring buffer": lambda: skel.maps.rb.open_ring_buffer(print),
    }
    r["ops"] = {name: outcome(fn) for name, fn in ops.items()}
    r["pb_close"] = outcome(pb.close)
    r["alive"] = still_alive(ours)


def s_threads(r):
    skel = open_skel()
    got, threads_seen = [], set()

    def cb(cpu, rec):
        got.append(rec.seq)
        threads_seen.add(threading.get_ident())

    pb = skel.maps.events.open_perf_buffer(cb)
    rb = skel.maps.rb.open_ring_buffer(cb.__get__(None) if False else
                                       (lambda rec: cb(0, rec)))
    stop = threading.Event()
    errors = []

    def poller():
        while not stop.is_set():
            try:
                pb.poll(50)
                rb.poll(50)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
                return

    t = threading.Thread(target=poller)
    t.start()
    for _ in range(20):
        trigger(1)
        time.sleep(0.005)
    for _ in range(100):
        if len(got) >= 40:
            break
        time.sleep(0.02)
    r["received"] = len(got)
    r["callback_threads"] = [x == threading.get_ident() for x in threads_seen]
    # destroy while the other thread is inside poll
    ours = {k: v - BASE[k] for k, v in fd_ids().items()}
    time.sleep(0.03)
    skel.destroy()
    t.join(5)
    r["poller_alive"] = t.is_alive()
    stop.set()
    t.join(5)
    r["poller_errors"] = errors
    r["alive"] = still_alive(ours)


def s_fork(r):
    skel = open_skel()
    got = []
    pb = skel.maps.events.open_perf_buffer(lambda cpu, rec: got.append(rec.seq))
    trigger(1)
    drain(pb.poll, lambda: len(got), 1)
    pid = os.fork()
    if pid == 0:  # the child reads shared memory, then exits normally (finalizers run)
        code = 0 if skel.bss.bss_count == 1 else 3
        sys.stdout.flush()
        sys.exit(code)
    _, status = os.waitpid(pid, 0)
    r["child_exit"] = os.waitstatus_to_exitcode(status)
    trigger(3)  # the parent's program, links and buffer must be untouched
    drain(pb.poll, lambda: len(got), 4)
    r["after_fork"] = sorted(got)
    ours = {k: v - BASE[k] for k, v in fd_ids().items()}
    skel.destroy()
    r["alive"] = still_alive(ours)


def s_lost(r):
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # all samples on one CPU
    skel = open_skel()
    got, lost_cb = [], []
    pb = skel.maps.events.open_perf_buffer(lambda cpu, rec: got.append(rec.seq),
                                           lost_callback=lambda cpu, n: lost_cb.append(n),
                                           page_count=1)
    trigger(3000)  # never polled meanwhile: a 4 KiB ring overflows
    for _ in range(3):  # the kernel reports a loss with the next sample it can write
        drain(pb.poll, lambda: 0, 1, rounds=5)
        trigger(1)
    drain(pb.poll, lambda: 0, 1, rounds=5)
    r.update(received=len(got), lost=pb.lost, lost_callback=sum(lost_cb),
             total=skel.bss.bss_count, distinct=len(set(got)))
    ours = {k: v - BASE[k] for k, v in fd_ids().items()}
    skel.destroy()
    r["alive"] = still_alive(ours)


FDS0 = set(os.listdir("/proc/self/fd"))
BASE = fd_ids()
result = {}
globals()["s_" + sys.argv[1]](result)
gc.collect()
result["leaked_fds"] = sorted(set(os.listdir("/proc/self/fd")) - FDS0)
print(json.dumps(result))
'''


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("faults")
    compile_bpf(ZOO_SRC, d / "zoo.bpf.o")
    run_btfgen("gen", d / "zoo.bpf.o", "-o", d / "zoo_skel.py", check=True)
    (d / "harness.py").write_text(HARNESS)
    return d / "harness.py", d / "zoo_skel.py"


def run_scenario(harness: tuple[Path, Path], name: str) -> dict[str, Any]:
    script, module = harness
    r = subprocess.run([sys.executable, str(script), name, str(module), str(CHECKOUT)],
                       capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, f"scenario {name} died ({r.returncode}):\n{r.stderr[-3000:]}"
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(f"the kernel refuses BPF here: {out['skip']}")
    assert out["leaked_fds"] == [], out
    assert out["alive"] == {}, f"still in the kernel after destroy: {out['alive']}"
    return out


def test_callback_that_raises(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "callback_raises")
    assert out["perf_errors"] == ["ValueError: perf callback failed"]
    # the drain delivers every waiting record, raising the first failure; libbpf's
    # callback path stops at each failing record
    assert out["ring_errors"] == ["KeyError: 'ring callback failed'"] * (
        1 if out["ring_drained"] else 2)
    # the buffers stay usable: every record arrives exactly once, none is lost
    assert out["perf_seqs"] == list(range(6)) and out["ring_seqs"] == list(range(6))
    assert out["lost"] == 0


def test_ctrl_c_during_poll(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "sigint")
    # KeyboardInterrupt comes out of a 10 s poll (blocked in its wait) when SIGINT arrives
    assert all(isinstance(x, float) and x < 3 for x in out["interrupts"]), out["interrupts"]
    assert out["after"] == [0, 0, 1, 1, 2, 2]  # both buffers still work


def test_destroy_twice_and_use_after_destroy(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "use_after_destroy")
    assert out["second_destroy"] == "no error"
    quiet = {name: what for name, what in out["ops"].items() if what == "no error"}
    assert not quiet, f"these worked on a destroyed skeleton: {quiet}"
    for name, what in out["ops"].items():
        kind, _, message = what.partition(": ")
        assert kind not in ("AttributeError", "TypeError", "SystemError"), (name, what)
        assert message, (name, what)
    assert out["pb_close"] == "no error"


def test_poll_from_another_thread_and_destroy_while_polling(
        harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "threads")
    assert out["received"] == 40
    assert out["callback_threads"] == [False]  # callbacks run in the polling thread
    assert not out["poller_alive"]
    # the poller sees a clear error after destroy, or nothing at all (never a crash)
    for e in out["poller_errors"]:
        assert e.partition(": ")[0] not in ("AttributeError", "TypeError", "SystemError"), e


def test_fork(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "fork")
    assert out["child_exit"] == 0
    assert out["after_fork"] == [0, 1, 2, 3]


def test_lost_samples_counted(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "lost")
    assert out["lost"] > 0
    assert out["lost_callback"] == out["lost"]
    assert out["distinct"] == out["received"]
    assert out["received"] + out["lost"] == out["total"], out
