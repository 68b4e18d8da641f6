"""Benchmark consumers in Python: btfgen's paths and bcc's.

    py_consumer.py MODE TARGET_TGID PAGES REGIME [SKEL_DIR]

MODE: event (btfgen per-event callback), event-nodrain (libbpf callback per
record, the fallback), batch (read_batch + numpy, at most 8192 records a
call), batch-records (read_batch + records()), bcc (bcc's
``b["events"].event(data)``; run with the system python3); a ``-w64`` suffix
wakes the reader every 64 samples.  Same protocol as
c_consumer.c: "ready", SIGUSR1 drains and prints "drained", SIGUSR2 ends with
one JSON line (received, lost, attempts, successes, cpu_s, bad).  REGIME live
polls all along; backlog only drains on SIGUSR1 and counts only that CPU.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

K, MASK = 2654435761, (1 << 64) - 1
#: Records per read_batch() at most.
BATCH = 8192
flags = {"drain": False, "stop": False}


def on_signal(sig: int, _frame: Any) -> None:
    flags["drain" if sig == signal.SIGUSR1 else "stop"] = True


BCC_SRC = r"""
struct event { u64 seq; u64 ts_ns; u32 pid; u32 cpu; char comm[16]; u64 check; };
BPF_PERF_OUTPUT(events);
BPF_ARRAY(counts, u64, 2);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
{
    u64 id = bpf_get_current_pid_tgid();
    struct event e = {};
    int k0 = 0, k1 = 1;
    if ((id >> 32) != TARGET)
        return 0;
    u64 *a = counts.lookup(&k0), *s = counts.lookup(&k1);
    if (!a || !s)
        return 0;
    e.seq = __sync_fetch_and_add(a, 1);
    e.ts_ns = bpf_ktime_get_ns();
    e.pid = (u32)id;
    e.cpu = bpf_get_smp_processor_id();
    bpf_get_current_comm(e.comm, sizeof(e.comm));
    e.check = e.seq * 2654435761ULL;
    if (events.perf_submit(args, &e, sizeof(e)) == 0)
        __sync_fetch_and_add(s, 1);
    return 0;
}
"""


REGIME = ["live"]


def run_loop(poll: Any, consume: Any) -> float:
    """Poll (live) or wait for drain signals (backlog); the CPU seconds to count."""
    sigs = {signal.SIGUSR1, signal.SIGUSR2}
    if REGIME[0] == "backlog":  # blocked before "ready": a drain signal may follow at once
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    print("ready", flush=True)
    if REGIME[0] == "backlog":
        spent = 0.0
        while signal.sigwait(sigs) == signal.SIGUSR1:
            t = time.process_time()
            consume()
            spent += time.process_time() - t
            print("drained", flush=True)
        return spent
    t0 = time.process_time()
    while not flags["stop"]:
        poll()
        if flags["drain"]:
            flags["drain"] = False
            consume()
            print("drained", flush=True)
    consume()
    return time.process_time() - t0


def bcc_main(target: int, pages: int, wakeup: int) -> dict[str, Any]:
    from bcc import BPF  # type: ignore[import-not-found]

    b = BPF(text=BCC_SRC, cflags=[f"-DTARGET={target}"])
    st = {"received": 0, "lost": 0, "bad": 0}

    def cb(cpu: int, data: Any, size: int) -> None:
        ev = b["events"].event(data)
        st["received"] += 1
        if ev.check != (ev.seq * K) & MASK:
            st["bad"] += 1

    def lost_cb(n: int) -> None:
        st["lost"] += n

    b["events"].open_perf_buffer(cb, page_cnt=pages, lost_cb=lost_cb, wakeup_events=wakeup)
    cpu = run_loop(lambda: b.perf_buffer_poll(100), lambda: b.perf_buffer_poll(0))
    counts = b["counts"]
    return {**st, "cpu_s": cpu, "attempts": counts[0].value, "successes": counts[1].value}


def btfgen_main(mode: str, target: int, pages: int, skel_dir: str) -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("bench_skel", Path(skel_dir) / "bench_skel.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_skel"] = mod
    spec.loader.exec_module(mod)
    skel = mod.BenchSkel.open()
    skel.rodata.target_tgid = target
    skel.load()
    skel.attach()
    st = {"received": 0, "bad": 0}
    wakeup = 64 if mode.endswith("-w64") else 1
    base = mode.removesuffix("-w64")
    if base.startswith("event"):
        n = [0]
        bad = []

        def cb(cpu: int, ev: Any) -> None:
            n[0] += 1
            if ev.check != (ev.seq * K) & MASK:
                bad.append(ev)

        pb = skel.maps.events.open_perf_buffer(cb, page_count=pages, wakeup_events=wakeup,
                                               drain=(base != "event-nodrain"))
        cpu = run_loop(lambda: pb.poll(100), pb.consume)
        st["received"], st["bad"] = n[0], len(bad)
    else:
        import numpy as np

        pb = skel.maps.events.open_perf_buffer(page_count=pages, wakeup_events=wakeup)
        from btfgen.runtime.batch import record_dtype

        record_dtype(mod.Event)  # built once, before the measured part
        as_records = base == "batch-records"

        def take(timeout: int) -> None:
            # Bounded batches: a drain buffer this size stays in the CPU's cache.
            # Each is dropped before the next read, so the next drain reuses its
            # buffer (see PerfBuffer.read_batch).
            while True:
                batch = pb.read_batch(timeout, max_records=BATCH)
                n = len(batch)
                if as_records:
                    recs = batch.records()
                    st["bad"] += sum(1 for r in recs if r.check != (r.seq * K) & MASK)
                    del recs
                else:
                    arr = batch.array()
                    st["bad"] += int(np.count_nonzero(arr["check"] != arr["seq"] * np.uint64(K)))
                    del arr
                del batch
                st["received"] += n
                if n < BATCH:
                    return
                timeout = 0

        cpu = run_loop(lambda: take(100), lambda: take(0))
    return {**st, "lost": pb.lost, "cpu_s": cpu, "attempts": skel.bss.attempts,
            "successes": skel.bss.successes, "drained": pb.drained}


def main() -> None:
    mode, target, pages, REGIME[0] = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_signal)
    if mode.startswith("bcc"):
        res = bcc_main(target, pages, 64 if mode.endswith("-w64") else 1)
    else:
        res = btfgen_main(mode, target, pages, sys.argv[5])
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
