"""Ring buffer (BPF_MAP_TYPE_RINGBUF) consumers: CPU per event of C and btfgen's paths.

One BPF program (perf/ringbuf.bpf.c) writes a 48-byte record per getppid() of
this process into an 8 MiB ring.  Backlog regime: the ring is filled with
``--count`` records (nobody reading), then one consumer drains them all; the
figure is the consumer's thread CPU time for that drain divided by the
records received.  Consumers, interleaved in every repetition:

* ``c``: libbpf ``ring_buffer__consume`` with a C callback checking each record
  (perf/ringbuf_c_drain.c, built now with gcc as a shared library);
* ``event``: btfgen per-event callback, compiled drain (records built in C);
* ``event-nodrain``: the same through libbpf's per-record callback (``drain=False``);
* ``batch`` / ``batch-records``: ``read_batch()`` as a numpy array / as records,
  at most 8192 records a call.

Every consumer checks each record (``check == seq * K``), and each drain must
receive exactly what the program counted as accepted.  The table shows median
(min-max) and the ratio to ``c``; results go to benchmarks/results/.

Run: .venv/bin/python benchmarks/bench_ringbuf.py [--reps 5] [--count 100000]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from save_results import save_results

HERE = Path(__file__).resolve().parent
SRC = HERE / "perf"
ROOT = HERE.parent
ALL = ["c", "event", "event-nodrain", "batch", "batch-records"]
K, MASK = 2654435761, (1 << 64) - 1
#: Records per read_batch() at most, as in bench_perf's consumers.
BATCH = 8192


def sh(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")


def build(tmp: Path) -> tuple[Any, Any]:
    """The generated skeleton module and the C consumer library."""
    obj = tmp / "ringbench.bpf.o"
    arch_inc = f"/usr/include/{os.uname().machine}-linux-gnu"
    sh("clang", "-g", "-O2", "-target", "bpf", "-I", arch_inc, "-c", str(SRC / "ringbuf.bpf.c"),
       "-o", str(obj))
    sh(sys.executable, "-m", "btfgen", "gen", str(obj), "-o", str(tmp / "ringbench_skel.py"))
    so = tmp / "ringbuf_c_drain.so"
    sh("gcc", "-O2", "-shared", "-fPIC", str(SRC / "ringbuf_c_drain.c"), "-lbpf", "-o", str(so))
    spec = importlib.util.spec_from_file_location("ringbench_skel", tmp / "ringbench_skel.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ringbench_skel"] = mod
    spec.loader.exec_module(mod)
    clib = ctypes.CDLL(str(so))
    clib.rb_open.restype = ctypes.c_void_p
    clib.rb_open.argtypes = [ctypes.c_int]
    clib.rb_drain.restype = ctypes.c_long
    clib.rb_drain.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_long)]
    clib.rb_close.argtypes = [ctypes.c_void_p]
    return mod, clib


def consumers(skel: Any, clib: Any) -> dict[str, Any]:
    """Each consumer as a function draining the ring: (received, bad records)."""
    import numpy as np

    from btfgen.runtime.batch import record_dtype

    record_dtype(sys.modules["ringbench_skel"].Event)  # built once, before the measured part
    events = skel.maps.events
    crb = clib.rb_open(events.fd)
    assert crb, "ring_buffer__new failed"
    nbad = ctypes.c_long()

    def c() -> tuple[int, int]:
        return clib.rb_drain(crb, ctypes.byref(nbad)), nbad.value

    def per_event(drain: bool) -> Any:
        st = [0, 0]

        def cb(ev: Any) -> None:
            st[0] += 1
            if ev.check != (ev.seq * K) & MASK:
                st[1] += 1

        rb = events.open_ring_buffer(cb, drain=drain)
        assert rb.drained == drain

        def run() -> tuple[int, int]:
            st[0] = st[1] = 0
            rb.consume()
            return st[0], st[1]
        return run

    batch_rb = events.open_ring_buffer()

    def batch() -> tuple[int, int]:
        # bounded batches, each dropped before the next read (as in bench_perf)
        received = bad = 0
        while True:
            arr = batch_rb.read_batch(0, max_records=BATCH).array()
            n = len(arr)
            received += n
            bad += int(np.count_nonzero(arr["check"] != arr["seq"] * np.uint64(K)))
            del arr
            if n < BATCH:
                return received, bad

    def batch_records() -> tuple[int, int]:
        received = bad = 0
        while True:
            recs = batch_rb.read_batch(0, max_records=BATCH).records()
            n = len(recs)
            received += n
            bad += sum(1 for r in recs if r.check != (r.seq * K) & MASK)
            del recs
            if n < BATCH:
                return received, bad

    return {"c": c, "event": per_event(True), "event-nodrain": per_event(False),
            "batch": batch, "batch-records": batch_records}


def fill(n: int) -> None:
    getppid = os.getppid
    for _ in range(n):
        getppid()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--count", type=int, default=100_000, help="records per drain")
    ap.add_argument("--consumers", default=",".join(ALL))
    a = ap.parse_args()
    kinds = a.consumers.split(",")
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # producer and consumer alike
    with tempfile.TemporaryDirectory() as d:
        mod, clib = build(Path(d))
        skel = mod.RingbenchSkel.open()
        skel.rodata.target_tgid = os.getpid()
        skel.load()
        skel.attach()
        run = consumers(skel, clib)
        rows: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
        for rep in range(a.reps):
            for kind in kinds:
                before = skel.bss.successes
                fill(a.count)
                accepted = skel.bss.successes - before
                t = time.thread_time()
                received, bad = run[kind]()
                cpu = time.thread_time() - t
                r = {"received": received, "bad": bad, "accepted": accepted, "cpu_s": cpu,
                     "exact": received == accepted == a.count}
                rows[kind].append(r)
                print(f"  rep {rep} {kind:14s} recv {received:8d} cpu/event "
                      f"{cpu / max(received, 1) * 1e9:7.0f} ns  exact={r['exact']} bad={bad}",
                      flush=True)
        skel.destroy()
    return report(rows, a)


def report(rows: dict[str, list[dict[str, Any]]], a: argparse.Namespace) -> int:
    def ns(r: dict[str, Any]) -> float:
        return float(r["cpu_s"] / max(r["received"], 1) * 1e9)

    ref = statistics.median(ns(r) for r in rows["c"]) if rows.get("c") else None
    lines = [f"ring buffer consumers: 48-byte records, 8 MiB ring, backlog of {a.count} "
             f"records per drain, {a.reps} interleaved reps, median (min-max)",
             f"{'consumer':16s} {'ns/event':>22s} {'x c':>7s} {'exact':>6s} {'bad':>4s}"]
    ok = True
    for kind, rs in rows.items():
        vals = [ns(r) for r in rs]
        med = statistics.median(vals)
        exact = all(r["exact"] for r in rs)
        bad = sum(r["bad"] for r in rs)
        ok = ok and exact and not bad
        ratio = f"{med / ref:7.1f}" if ref else "      -"
        lines.append(f"{kind:16s} {med:8.0f} ({min(vals):5.0f}-{max(vals):6.0f}) {ratio} "
                     f"{str(exact):>6s} {bad:4d}")
    text = "\n".join(lines)
    print(text)
    print(f"results: {save_results('ringbuf', text, {'args': vars(a), 'runs': rows})}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
