"""Soak: a generated skeleton under a sustained event rate for a long time.

A BPF program on ``sys_enter_getppid`` (filtered to one producer process through
``.rodata``) writes a numbered record to a perf buffer and a ring buffer.  A
producer process calls ``getppid()`` at a fixed rate, below what the consumer
can take; this process polls both buffers through the generated skeleton and
checks every record.  Every ``--sample`` seconds it prints RSS, open fds,
records received and lost.  At the end it checks:

* RSS flat: the largest RSS after warm-up within 5% of RSS at the end of warm-up;
* 0 lost (perf buffer losses as reported by the kernel, ring buffer reservations
  that failed as counted by the program) and every sequence number received
  exactly once on each buffer;
* open fds constant after warm-up.

Run: ``.venv/bin/python benchmarks/soak.py [--seconds 600] [--rate 10000]``
(root; exits 1 if a check fails, 2 if the kernel refuses BPF).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
MULTIARCH = "/usr/include/x86_64-linux-gnu"

SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct soak_event {
	__u64 seq;
	__u32 pid;
	__u32 cpu;
	__u64 check;
	char tag[8];
};

const volatile __u32 target_pid = 0;
__u64 seq_next = 0;
__u64 ring_dropped = 0;

struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 20); } rb SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (pid != target_pid)
		return 0;
	struct soak_event e = {};
	e.seq = __sync_fetch_and_add(&seq_next, 1);
	e.pid = pid;
	e.cpu = bpf_get_smp_processor_id();
	e.check = e.seq * 2654435761ULL;
	__builtin_memcpy(e.tag, "soak", 5);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	struct soak_event *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&ring_dropped, 1);
		return 0;
	}
	__builtin_memcpy(r, &e, sizeof(e));
	bpf_ringbuf_submit(r, 0);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""

#: The producer: wait for "go" on stdin, then getppid() at RATE per second
#: (paced every millisecond) until stdin closes; print the number of calls.
PRODUCER = r"""
import os, select, sys, time
rate = float(sys.argv[1])
sys.stdin.readline()
n = 0
t0 = time.monotonic()
while True:
    due = int((time.monotonic() - t0) * rate)
    while n < due:
        os.getppid()
        n += 1
    r, _, _ = select.select([sys.stdin], [], [], 0.001)
    if r and not sys.stdin.readline():
        break
print(n, flush=True)
"""


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def build(tmp: Path) -> ModuleType:
    """Compile the program, ``btfgen gen`` it, import the module."""
    c = tmp / "soak.bpf.c"
    c.write_text(SRC)
    obj = tmp / "soak.bpf.o"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I", MULTIARCH, "-c", str(c),
                    "-o", str(obj)], check=True)
    out = tmp / "soak_skel.py"
    subprocess.run([sys.executable, "-m", "btfgen", "gen", str(obj), "-o", str(out)],
                   check=True)
    spec = importlib.util.spec_from_file_location("soak_skel", out)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["soak_skel"] = mod
    spec.loader.exec_module(mod)
    return mod


class Checker:
    """Counts records of one buffer and checks each one, in bounded memory:
    every sequence number below ``low`` has been seen; ``ahead`` holds those
    seen above it (perf buffers interleave CPUs, so a few arrive early)."""

    def __init__(self, name: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.low = 0
        self.ahead: set[int] = set()
        self.count = 0
        self.dupes = 0
        self.bad = 0

    def add(self, rec: object) -> None:
        seq = rec.seq  # type: ignore[attr-defined]
        if (rec.pid != self.pid  # type: ignore[attr-defined]
                or rec.check != (seq * 2654435761) & (2**64 - 1)  # type: ignore[attr-defined]
                or rec.tag != b"soak"):  # type: ignore[attr-defined]
            self.bad += 1
        self.count += 1
        if seq < self.low or seq in self.ahead:
            self.dupes += 1
            return
        if seq == self.low:
            self.low += 1
            while self.low in self.ahead:
                self.ahead.discard(self.low)
                self.low += 1
        else:
            self.ahead.add(seq)

    def missing(self, total: int) -> int:
        return total - self.low - sum(1 for s in self.ahead if s < total)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--rate", type=float, default=10000.0, help="events per second")
    ap.add_argument("--sample", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=None,
                    help="seconds before the RSS/fd baseline (default: 10%% of the run)")
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else max(5.0, args.seconds * 0.1)

    with tempfile.TemporaryDirectory() as d:
        mod = build(Path(d))
    producer = subprocess.Popen([sys.executable, "-c", PRODUCER, str(args.rate)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert producer.stdin is not None and producer.stdout is not None
    skel = mod.SoakSkel.open()
    try:
        skel.rodata.target_pid = producer.pid
        try:
            skel.load()
        except Exception as e:  # noqa: BLE001 - report and stop
            print(f"the kernel refuses BPF here: {str(e).splitlines()[0]}")
            return 2
        skel.attach()
        perf_chk = Checker("perf", producer.pid)
        ring_chk = Checker("ring", producer.pid)
        lost_reports: list[tuple[int, int]] = []
        pb = skel.maps.events.open_perf_buffer(lambda cpu, rec: perf_chk.add(rec),
                                               lost_callback=lambda cpu, n:
                                               lost_reports.append((cpu, n)),
                                               page_count=256)
        rb = skel.maps.rb.open_ring_buffer(ring_chk.add)
        producer.stdin.write("go\n")
        producer.stdin.flush()
        t0 = time.monotonic()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        next_sample = t0
        samples: list[tuple[float, int, int, int, int]] = []
        print(f"soak: {args.seconds:.0f} s at {args.rate:.0f} events/s (producer pid "
              f"{producer.pid}); warm-up {warmup:.0f} s")
        print(f"{'t/s':>7} {'RSS/kB':>9} {'fds':>4} {'perf recs':>10} {'ring recs':>10} "
              f"{'lost':>5} {'ring drop':>9}")
        while True:
            now = time.monotonic()
            if now >= next_sample:
                sample = (now - t0, rss_kb(), fd_count(), perf_chk.count, ring_chk.count)
                samples.append(sample)
                print(f"{sample[0]:7.1f} {sample[1]:9d} {sample[2]:4d} {sample[3]:10d} "
                      f"{sample[4]:10d} {pb.lost:5d} {skel.bss.ring_dropped:9d}", flush=True)
                next_sample += args.sample
            if now - t0 >= args.seconds:
                break
            pb.poll(100)
            rb.consume()
        final_fds = fd_count()  # before our pipes to the producer close
        producer.stdin.close()
        sent = int(producer.stdout.read().strip() or 0)
        producer.wait()
        for _ in range(5):  # drain what is still in flight
            pb.poll(50)
            rb.consume()
        elapsed = time.monotonic() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        total = skel.bss.seq_next
        ring_dropped = skel.bss.ring_dropped
        final = (elapsed, rss_kb(), final_fds, perf_chk.count, ring_chk.count)
        samples.append(final)
        pb.close()
        rb.close()
    finally:
        skel.destroy()
        if producer.poll() is None:
            producer.kill()

    after = [s for s in samples if s[0] >= warmup]
    base = after[0] if after else samples[-1]
    rss_max = max(s[1] for s in after) if after else base[1]
    growth = (rss_max - base[1]) / base[1] * 100
    fds = {s[2] for s in after}
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(f"\nelapsed {elapsed:.1f} s; producer calls {sent}; program events {total} "
          f"({total / elapsed:.0f}/s)")
    print(f"perf: {perf_chk.count} records, missing {perf_chk.missing(total)}, dupes "
          f"{perf_chk.dupes}, bad {perf_chk.bad}, lost (kernel) {pb.lost} in "
          f"{len(lost_reports)} reports")
    print(f"ring: {ring_chk.count} records, missing {ring_chk.missing(total)}, dupes "
          f"{ring_chk.dupes}, bad {ring_chk.bad}, reservations failed {ring_dropped}")
    print(f"RSS: {base[1]} kB after warm-up, max {rss_max} kB, end {final[1]} kB "
          f"({growth:+.2f}%); fds after warm-up: {sorted(fds)}")
    print(f"consumer CPU: {cpu_s:.1f} s ({cpu_s / elapsed * 100:.1f}% of one core, "
          f"{cpu_s / max(1, 2 * total) * 1e6:.2f} us per record)")
    ok = (growth <= 5.0 and len(fds) == 1 and pb.lost == 0 and ring_dropped == 0
          and perf_chk.missing(total) == 0 and ring_chk.missing(total) == 0
          and not perf_chk.dupes and not ring_chk.dupes and not perf_chk.bad
          and not ring_chk.bad and total == sent)
    print("SOAK PASSED" if ok else "SOAK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
