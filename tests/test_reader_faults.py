"""Perf and ring buffer readers under threads, fork, signals, destroy and bad
sizes, in the kernel: every record exactly once, intact, and
``received + lost == sent`` (the program's sequence counter; see
reader_faults_prog.py).

Each scenario runs in its own interpreter under ``python -X faulthandler``
with ``MALLOC_PERTURB_=165`` (freed memory is scribbled over): a crash is a
failing test, with the fault's traceback in the message.  Skips only when the
kernel refuses BPF, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.reader_faults_prog import SRC

CHECKOUT = Path(__file__).resolve().parent.parent  # on the harness's sys.path: tests.helpers

pytestmark = pytest.mark.live

HARNESS = r'''
import collections, json, os, random, signal, sys, threading, time
sys.path.insert(0, sys.argv[3])
from tests.helpers.reader_faults_prog import FLEX_MIN, expected, observed
from tests.helpers.scenario_util import load_and_attach, load_module
from btfgen.runtime.codec import RecordCodec

mod = load_module(sys.argv[2], "rf_skel")

PID = os.getpid()
CLS = {"plain": mod.Plain, "arr": mod.Arrays, "flex": mod.Flex}


def open_skel():
    skel = mod.RfSkel.open()
    skel.rodata.target_tgid = PID
    return load_and_attach(skel)


def trigger(n):
    for _ in range(n):
        os.getppid()


def typed(skel, transport, kind):
    m = getattr(skel.maps, ("p_" if transport == "perf" else "r_") + kind)
    cls = CLS[kind]
    return m.with_record(RecordCodec(cls, min_size=FLEX_MIN) if kind == "flex" else cls)


def open_reader(skel, transport, kind, callback, **kw):
    m = typed(skel, transport, kind)
    if transport == "perf":
        return m.open_perf_buffer(callback, **kw)
    return m.open_ring_buffer(callback, **kw)


def check(transport, kind, recs, sent, lost):
    """Each record once and intact; received + lost == sent."""
    seqs = [r.seq for r in recs]
    bad = []
    for r in recs:
        got = observed(kind, r)
        if transport == "perf" and kind == "flex":
            # a perf sample may carry up to 7 bytes of the kernel's padding
            pad = got["data"][got["len"]:]
            if len(pad) >= 8:
                bad.append(got["seq"])
            got["data"] = got["data"][:got["len"]]
        if got != expected(kind, r.seq):
            bad.append(r.seq)
    return {"received": len(seqs), "distinct": len(set(seqs)), "lost": lost, "sent": sent,
            "in_range": all(0 <= s < sent for s in seqs), "bad": bad[:5],
            "ok": len(seqs) == len(set(seqs)) and not bad and len(seqs) + lost == sent
                  and all(0 <= s < sent for s in seqs)}


def lost_of(skel, reader, transport, kind):
    if transport == "perf":
        return reader.lost
    return skel.bss.r_refused[["plain", "arr", "flex"].index(kind)]


def collect_until_done(skel, reader, transport, kind, recs_len, poll):
    """Poll until every record sent was received or counted lost (a perf
    buffer's lost is the kernel's own counter: exact with no later sample)."""
    for _ in range(1600):
        if recs_len() + lost_of(skel, reader, transport, kind) >= skel.bss.sent:
            return
        poll()


CASES = [(t, k, m) for t in ("perf", "ring") for k in ("plain", "arr", "flex")
         for m in ("callback", "batch")]


def s_threads(r):
    """4 threads poll one buffer while events arrive."""
    for transport, kind, mode in CASES:
        skel = open_skel()
        recs, errors = [], []
        lock = threading.Lock()

        def keep(*args):
            with lock:
                recs.append(args[-1])

        reader = open_reader(skel, transport, kind, keep if mode == "callback" else None,
                             **({"page_count": 256} if transport == "perf" else {}))
        stop = threading.Event()

        def poller():
            try:
                while not stop.is_set():
                    if mode == "callback":
                        reader.poll(5)
                    else:
                        batch = reader.read_batch(5)
                        got = batch.records()
                        if len(got) and [r.seq for r in got] != batch.array()["seq"].tolist():
                            errors.append("array() and records() disagree")
                        with lock:
                            recs.extend(got)
            except BaseException as e:
                errors.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=poller) for _ in range(4)]
        for t in threads:
            t.start()
        for _ in range(40):
            trigger(500)
        poll = (lambda: reader.poll(10)) if mode == "callback" else (
            lambda: recs.extend(reader.read_batch(10).records()))
        for _ in range(200):
            if len(recs) + lost_of(skel, reader, transport, kind) >= skel.bss.sent:
                break
            time.sleep(0.01)
        stop.set()
        for t in threads:
            t.join(10)
        collect_until_done(skel, reader, transport, kind, lambda: len(recs), poll)
        out = check(transport, kind, recs, skel.bss.sent, lost_of(skel, reader, transport, kind))
        out["errors"] = errors
        r[f"{transport}-{kind}-{mode}"] = out
        skel.destroy()


class Alarm(Exception):
    pass


def s_signals(r):
    """A SIGALRM handler raises (an Exception, or KeyboardInterrupt) at random
    points of poll()/read_batch(), 100 times per case, while events arrive."""
    state = {"raised": 0, "kind": Alarm}

    def on_alarm(sig, frame):
        state["raised"] += 1
        raise state["kind"]("alarm")

    signal.signal(signal.SIGALRM, on_alarm)
    rnd = random.Random(1234)
    cases = [("perf", "plain", "callback"), ("perf", "arr", "callback"),
             ("perf", "flex", "callback"), ("perf", "plain", "batch"),
             ("ring", "plain", "callback"), ("ring", "arr", "callback"),
             ("ring", "flex", "batch")]
    for transport, kind, mode in cases:
        fds = set(os.listdir("/proc/self/fd"))
        skel = open_skel()
        got = collections.deque()
        # C-level callbacks: nothing a signal can interrupt between a record's
        # arrival and its keeping (a record counts as delivered once its
        # callback is called)
        cb = (got.insert if transport == "perf" else got.append) if mode == "callback" else None
        reader = open_reader(skel, transport, kind, cb,
                             **({"page_count": 256} if transport == "perf" else {}))
        batches = []
        stop = threading.Event()

        def producer():
            while not stop.is_set():
                trigger(200)
                time.sleep(0.0005)

        t = threading.Thread(target=producer, daemon=True)
        t.start()
        interrupted = 0
        state["raised"] = 0
        while state["raised"] < 100:
            raised = state["raised"]
            state["kind"] = KeyboardInterrupt if raised % 2 else Alarm
            try:
                signal.setitimer(signal.ITIMER_REAL, rnd.uniform(0.0001, 0.004))
                # (an exception a handler raises where Python ignores it -- in a
                # weakref callback, say -- ends the round without reaching us)
                while state["raised"] == raised:
                    if mode == "callback":
                        reader.poll(2)
                    else:
                        batches.append(reader.read_batch(2))
            except (Alarm, KeyboardInterrupt):
                interrupted += 1
        signal.setitimer(signal.ITIMER_REAL, 0)
        stop.set()
        t.join()
        recs = []
        def poll():
            if mode == "callback":
                reader.poll(10)
            else:
                batches.append(reader.read_batch(10))
        for _ in range(400):
            n = len(got) + sum(len(b) for b in batches)
            if n + lost_of(skel, reader, transport, kind) >= skel.bss.sent:
                break
            poll()
        poll()
        recs = list(got) if mode == "callback" else [x for b in batches for x in b.records()]
        out = check(transport, kind, recs, skel.bss.sent, lost_of(skel, reader, transport, kind))
        out["interrupted"] = interrupted
        skel.destroy()  # nothing left "busy": every fd closes
        out["leaked_fds"] = sorted(set(os.listdir("/proc/self/fd")) - fds)
        r[f"{transport}-{kind}-{mode}"] = out


def s_slow_callback_ctrl_c(r):
    """KeyboardInterrupt in a slow callback comes out after the current record."""
    n = 600
    main = threading.main_thread().ident
    for transport, kind in (("perf", "plain"), ("perf", "arr"), ("ring", "plain"),
                            ("ring", "arr")):
        skel = open_skel()
        got = []
        calls_after = []
        signalled = []
        flowing, sent = threading.Event(), threading.Event()

        def slow(*args):
            if signalled:
                calls_after.append(1)
            got.append(args[-1])
            if len(got) == 20:
                flowing.set()
            elif len(got) == n - 20:
                sent.wait(60)  # a late interrupter (loaded machine): records remain for it
            time.sleep(0.001)

        reader = open_reader(skel, transport, kind, slow,
                             **({"page_count": 256} if transport == "perf" else {}))
        trigger(n)

        def interrupt():  # Ctrl-C once records are being delivered
            flowing.wait(60)
            signalled.append(1)
            signal.pthread_kill(main, signal.SIGINT)
            sent.set()

        timer = threading.Thread(target=interrupt)
        timer.start()
        t0 = time.monotonic()
        outcome = "no interrupt"
        try:
            while len(got) < n:
                reader.poll(100)
        except KeyboardInterrupt:
            outcome = "KeyboardInterrupt"
        elapsed = time.monotonic() - t0
        at_interrupt = len(got)
        timer.join()
        after = len(calls_after)
        collect_until_done(skel, reader, transport, kind, lambda: len(got),
                           lambda: reader.poll(10))
        out = check(transport, kind, got, skel.bss.sent, lost_of(skel, reader, transport, kind))
        out.update(outcome=outcome, callbacks_after_signal=after, seconds=round(elapsed, 3),
                   at_interrupt=at_interrupt)
        r[f"{transport}-{kind}"] = out
        skel.destroy()


def s_fork(r):
    """In a child every call raises a clear error (no SIGSEGV); the child's
    exit or destroy() leaves the parent's buffers, links and maps working."""
    for how in ("exit", "destroy"):
        skel = open_skel()
        got_p, got_r = [], []
        pb = open_reader(skel, "perf", "plain", lambda cpu, rec: got_p.append(rec))
        pa = open_reader(skel, "perf", "arr", None)
        rb = open_reader(skel, "ring", "plain", got_r.append)
        trigger(10)
        collect_until_done(skel, pb, "perf", "plain", lambda: len(got_p), lambda: pb.poll(10))
        collect_until_done(skel, rb, "ring", "plain", lambda: len(got_r), lambda: rb.poll(10))
        rd, wr = os.pipe()
        trigger(5)  # waiting in the rings when the child looks
        pid = os.fork()
        if pid == 0:
            os.close(rd)
            res = {}
            for name, fn in (("perf poll", lambda: pb.poll(0)), ("perf consume", pb.consume),
                             ("perf read_batch", lambda: pa.read_batch(0)),
                             ("perf fileno", pb.fileno),
                             ("perf consume_buffer", lambda: pb.consume_buffer(0)),
                             ("ring poll", lambda: rb.poll(0)),
                             ("ring read_batch", lambda: rb.read_batch(0)),
                             ("skel poll", lambda: skel.poll(0))):
                try:
                    fn()
                    res[name] = "no error"
                except BaseException as e:
                    res[name] = f"{type(e).__name__}: {e}"
            if how == "destroy":
                skel.destroy()
            os.write(wr, json.dumps(res).encode())
            os.close(wr)
            sys.exit(0)
        os.close(wr)
        child = json.loads(os.read(rd, 1 << 16).decode())
        os.close(rd)
        _, status = os.waitpid(pid, 0)
        trigger(20)
        collect_until_done(skel, pb, "perf", "plain", lambda: len(got_p), lambda: pb.poll(10))
        collect_until_done(skel, rb, "ring", "plain", lambda: len(got_r), lambda: rb.poll(10))
        arr = pa.read_batch(0).records()
        r[how] = {"child": child, "child_exit": os.waitstatus_to_exitcode(status),
                  "perf": check("perf", "plain", got_p, skel.bss.sent, pb.lost),
                  "ring": check("ring", "plain", got_r, skel.bss.sent, skel.bss.r_refused[0]),
                  "arr": check("perf", "arr", arr, skel.bss.sent, pa.lost),
                  "parent_pid": PID}
        skel.destroy()


def s_destroy_reopen(r):
    """destroy() and a new skeleton from inside a callback: the old buffer's
    delayed free must not touch the new skeleton's map through a reused fd."""
    out = {}
    for transport in ("perf", "ring"):
        skel = open_skel()
        state = {}

        def cb(*args):
            if "new" not in state:
                skel.destroy()
                new = open_skel()
                state["new"] = new
                state["got"] = []
                state["reader"] = open_reader(new, transport, "plain",
                                              (lambda c, x: state["got"].append(x))
                                              if transport == "perf" else state["got"].append)

        reader = open_reader(skel, transport, "plain", cb if transport == "ring" else
                             (lambda c, x: cb(c, x)))
        trigger(3)
        for _ in range(50):
            if "new" in state:
                break
            try:
                reader.poll(20)
            except ValueError:
                break
        new, got, nreader = state["new"], state["got"], state["reader"]
        trigger(50)
        collect_until_done(new, nreader, transport, "plain", lambda: len(got),
                           lambda: nreader.poll(10))
        out[transport] = check(transport, "plain", got, new.bss.sent,
                               lost_of(new, nreader, transport, "plain"))
        out[transport]["old_closed"] = reader.closed
        new.destroy()
    r.update(out)


def s_progress(r):
    """Records that can never fit and bad sizes raise at the call; poll(timeout)
    returns within its timeout under sustained load."""
    skel = open_skel()
    errors = {}
    calls = {
        "perf oversize": lambda: skel.maps.p_plain.with_record(8192).open_perf_buffer(
            print, page_count=1),
        "ring oversize": lambda: skel.maps.r_small.with_record(4096).open_ring_buffer(print),
        "page_count 3": lambda: skel.maps.p_plain.open_perf_buffer(print, page_count=3),
        "page_count 0": lambda: skel.maps.p_plain.open_perf_buffer(print, page_count=0),
        "page_count 2**52": lambda: skel.maps.p_plain.open_perf_buffer(print,
                                                                        page_count=2**52),
        "wakeup_events -1": lambda: skel.maps.p_plain.open_perf_buffer(print,
                                                                        wakeup_events=-1),
        "wakeup_bytes -1": lambda: skel.maps.p_plain.open_perf_buffer(print, wakeup_bytes=-1),
        "cpus [-1]": lambda: skel.maps.p_plain.open_perf_buffer(print, cpus=[-1]),
        "cpus [0, 0]": lambda: skel.maps.p_plain.open_perf_buffer(print, cpus=[0, 0]),
        "cpus [4096]": lambda: skel.maps.p_plain.open_perf_buffer(print, cpus=[4096]),
        "timeout_ms -5": lambda: typed(skel, "perf", "plain").open_perf_buffer(print).poll(-5),
        "max_records 0": lambda: typed(skel, "ring", "plain").open_ring_buffer().read_batch(
            0, max_records=0),
        "index 99 (consume_buffer)": lambda: typed(skel, "perf", "plain").open_perf_buffer(
            print).consume_buffer(99),
    }
    for name, fn in calls.items():
        try:
            fn()
            errors[name] = "no error"
        except BaseException as e:
            errors[name] = f"{type(e).__name__}: {e}"
    r["errors"] = errors
    # a 4096-byte ring holds a 4084-byte record exactly: open works
    r["fits"] = type(skel.maps.p_plain.with_record(4084).open_perf_buffer(print, page_count=1)
                     ).__name__
    # sustained load: poll(50) returns within its timeout plus its callbacks' time
    spent = [0.0]
    def cb(*args):
        t = time.perf_counter()
        sum(range(200))
        spent[0] += time.perf_counter() - t
    timings = {}
    for transport, kind in (("perf", "plain"), ("perf", "arr"), ("ring", "arr")):
        reader = open_reader(skel, transport, kind, cb)
        stop = threading.Event()
        def producer():
            while not stop.is_set():
                trigger(100)
        t = threading.Thread(target=producer)
        t.start()
        worst = 0.0
        for _ in range(20):
            spent[0] = 0.0
            t0 = time.monotonic()
            reader.poll(50)
            worst = max(worst, time.monotonic() - t0 - spent[0])
        stop.set()
        t.join()
        timings[f"{transport}-{kind}"] = round(worst, 3)
        reader.close()
    r["worst_poll_overhead_s"] = timings
    skel.destroy()


def s_perf_api(r):
    """buffer_count, buffer_fd(i), consume_buffer(i), skel.poll()."""
    skel = open_skel()
    cpus = sorted(os.sched_getaffinity(0))
    got = []
    pb = open_reader(skel, "perf", "plain", lambda cpu, rec: got.append((cpu, rec.seq)))
    r["buffer_count"] = pb.buffer_count
    fds = [pb.buffer_fd(i) for i in range(pb.buffer_count)]
    r["fds_distinct"] = len(set(fds)) == len(fds) and all(
        os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[perf_event]" for fd in fds)
    # records written on the CPU of ring 1 (or 0): consume_buffer of another ring takes none
    target = cpus[-1]
    ring = pb._cpus.index(target)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {target})
    trigger(7)
    os.sched_setaffinity(0, old)
    other = [i for i in range(pb.buffer_count) if i != ring]
    r["other_ring"] = sum(pb.consume_buffer(i) for i in other)
    r["own_ring"] = pb.consume_buffer(ring)
    r["consumed"] = sorted(got) == [(target, s) for s in range(7)]
    # skel.poll over a perf and a ring buffer together
    got_r = []
    rb = open_reader(skel, "ring", "arr", got_r.append)
    rb.consume()
    got.clear()
    t = threading.Timer(0.05, trigger, (5,))
    t.start()
    total = 0
    for _ in range(50):
        total += skel.poll(100)
        if len(got) >= 5 and len(got_r) >= 5 + 7:
            break
    t.join()
    r["skel_poll"] = {"total": total, "perf": sorted(s for _c, s in got),
                      "ring": sorted(x.seq for x in got_r)}
    skel.destroy()
    try:
        skel.poll(0)
        r["poll_after_destroy"] = "no error"
    except BaseException as e:
        r["poll_after_destroy"] = f"{type(e).__name__}: {e}"


result = {}
globals()["s_" + sys.argv[1]](result)
print(json.dumps(result))
'''


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("readerfaults")
    compile_bpf(SRC, d / "rf.bpf.o")
    run_btfgen("gen", d / "rf.bpf.o", "-o", d / "rf_skel.py", "--event", "p_flex=struct flex",
               "--event", "r_flex=struct flex", check=True)
    (d / "harness.py").write_text(HARNESS)
    return d / "harness.py", d / "rf_skel.py"


def run_scenario(harness: tuple[Path, Path], name: str) -> dict[str, Any]:
    script, module = harness
    env = dict(os.environ, MALLOC_PERTURB_="165")
    r = subprocess.run([sys.executable, "-X", "faulthandler", str(script), name, str(module),
                        str(CHECKOUT)], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, f"scenario {name} died ({r.returncode}):\n{r.stderr[-4000:]}"
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    if "skip" in out:
        pytest.skip(f"the kernel refuses BPF here: {out['skip']}")
    return out


@pytest.mark.slow
def test_four_threads_polling_one_buffer(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "threads")
    for case, res in out.items():
        assert res["errors"] == [], (case, res)
        assert res["ok"], (case, sorted(res.items()))
        assert res["received"] > 0, (case, res)


@pytest.mark.slow
def test_signal_handler_raising_mid_poll(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "signals")
    for case, res in out.items():
        assert res["interrupted"] >= 90, (case, res)
        assert res["leaked_fds"] == [], (case, res)
        assert res["ok"], (case, res)


def test_ctrl_c_in_a_slow_callback_surfaces_after_the_current_record(
        harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "slow_callback_ctrl_c")
    for case, res in out.items():
        assert res["outcome"] == "KeyboardInterrupt", (case, res)
        assert res["callbacks_after_signal"] <= 1, (case, res)
        assert res["at_interrupt"] < res["sent"], (case, res)  # records were still waiting
        assert res["ok"], (case, res)  # the rest came with the next polls, once each


def test_fork_child_gets_a_clear_error_and_leaves_the_parent_working(
        harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "fork")
    for how in ("exit", "destroy"):
        res = out[how]
        assert res["child_exit"] == 0, res
        for call, what in res["child"].items():
            assert what.startswith("RuntimeBpfError: "), (how, call, what)
            assert f"belongs to process {res['parent_pid']}" in what, (how, call, what)
            assert "open a new skeleton in the child" in what, (how, call, what)
        for part in ("perf", "ring", "arr"):
            assert res[part]["ok"] and res[part]["received"] >= 35, (how, part, res[part])


def test_destroy_and_reopen_from_a_callback(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "destroy_reopen")
    for transport in ("perf", "ring"):
        res = out[transport]
        assert res["old_closed"], res
        assert res["ok"] and res["received"] == 50, (transport, res)


def test_oversize_records_bad_sizes_and_poll_timeout(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "progress")
    errors = out["errors"]
    assert errors["perf oversize"].startswith("ValueError: perf buffer p_plain: a 8192-byte "
                                              "record (8204 bytes with the kernel's header) "
                                              "can never fit its 4096-byte ring"), errors
    assert errors["ring oversize"].startswith("ValueError: ring buffer r_small: a 4096-byte "
                                              "record (4104 bytes"), errors
    for name, what in errors.items():
        kind, _, message = what.partition(": ")
        assert kind in ("ValueError", "IndexError"), (name, what)
        arg = name.split()[0]
        assert arg in message or "record" in message, (name, what)
    assert out["fits"] == "PerfBuffer"
    for case, seconds in out["worst_poll_overhead_s"].items():
        assert seconds < 1.0, (case, seconds)  # poll(50): bounded, never spinning


def test_perf_buffer_api_and_skeleton_poll(harness: tuple[Path, Path]) -> None:
    out = run_scenario(harness, "perf_api")
    assert out["buffer_count"] == len(os.sched_getaffinity(0)) or out["buffer_count"] >= 1
    assert out["fds_distinct"]
    assert out["other_ring"] == 0 and out["own_ring"] == 7 and out["consumed"]
    sp = out["skel_poll"]
    assert sp["perf"] == list(range(7, 12)) and sp["ring"] == list(range(12))
    assert sp["total"] == 5 + 5
    assert out["poll_after_destroy"].startswith("RuntimeBpfError: no perf or ring buffer")
