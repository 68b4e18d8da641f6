"""Fixed cost of one poll of the batch path, warm and right after a sleep.

bench_perf's batch consumer is within 2x of C when drains are large (``deep``)
and above it when each drain is small or follows a sleep (``backlog``, ``flat``,
``paced``).  This shows why: the cost of each step of one poll that does not
depend on the record count, measured back to back (warm) and after a 5 ms sleep
(cold: on the test VM, code and data a process has not touched for a while
cost several times more to touch again; a C consumer touches little).

Each sample: 16 records are put in a 64-page perf buffer (getppid() calls of
this process), then (cold) the process sleeps, then one step is timed.  Steps
and states are interleaved; the table shows medians in microseconds.

Run: .venv/bin/python benchmarks/bench_poll_cost.py [--samples 200]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_perf import build
from save_results import save_results

RECORDS = 16
K = 2654435761


def steps(pb: Any, mod: Any) -> dict[str, Callable[[], object]]:
    """What one poll of the batch path does, step by step (each drains the ring
    unless it says otherwise)."""
    import numpy as np

    from btfgen.runtime.batch import record_dtype

    rings = pb._rings
    dtype = record_dtype(mod.Event)
    arr = rings.current.array(dtype, RECORDS)
    k = np.uint64(K)

    def c_drain() -> object:
        return rings.drain(0, dtype.itemsize, 8192)

    def read_batch() -> object:
        return pb.read_batch(0, max_records=8192)

    def read_batch_array() -> object:
        return pb.read_batch(0, max_records=8192).array()

    def numpy_check() -> object:  # bench_perf's check of each record, on 16 records
        return int(np.count_nonzero(arr["check"] != arr["seq"] * k))

    def python_call() -> object:
        return None

    return {"C drain (one cffi call)": c_drain, "read_batch()": read_batch,
            "read_batch().array()": read_batch_array,
            "numpy check (no drain)": numpy_check, "empty Python call (no drain)": python_call}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=200)
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_poll_cost: skipped (needs root to load BPF)")
        return
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory(prefix="btfgen-bench-") as tmpdir:
        tmp = Path(tmpdir)
        build(tmp)
        spec = importlib.util.spec_from_file_location("bench_skel", tmp / "bench_skel.py")
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules["bench_skel"] = mod
        spec.loader.exec_module(mod)
        skel = mod.BenchSkel.open()
        skel.rodata.target_tgid = os.getpid()
        skel.load()
        skel.attach()
        pb = skel.maps.events.open_perf_buffer(page_count=64)
        work = steps(pb, mod)
        times: dict[tuple[str, str], list[float]] = {}
        getppid = os.getppid
        for _ in range(a.samples):
            for state in ("warm", "cold"):
                for name, step in work.items():
                    for _ in range(RECORDS):
                        getppid()
                    if state == "cold":
                        time.sleep(0.005)
                    else:
                        step()  # the same step just before: warm
                        for _ in range(RECORDS):
                            getppid()
                    t = time.perf_counter_ns()
                    step()
                    times.setdefault((name, state), []).append(
                        (time.perf_counter_ns() - t) / 1000)
                    pb.read_batch(0)  # what a step left in the ring
        skel.destroy()
    lines = [f"one poll of the batch path, {RECORDS} records waiting, {a.samples} samples, "
             "median us (cold: after a 5 ms sleep)",
             f"{'step':32s} {'warm':>8s} {'cold':>8s}"]
    summary: dict[str, Any] = {}
    for name in work:
        warm = statistics.median(times[(name, "warm")])
        cold = statistics.median(times[(name, "cold")])
        lines.append(f"{name:32s} {warm:8.1f} {cold:8.1f}")
        summary[name] = {"warm_us": warm, "cold_us": cold}
    text = "\n".join(lines)
    print(text)
    print(f"results: {save_results('poll-cost', text, summary)}")


if __name__ == "__main__":
    main()
