"""Reading a struct-keyed hash map: what frozen (hashable) keys cost.

A HASH map of ``struct key { u32 pid; u32 cpu; char comm[8]; } -> u64`` with N entries
is filled from Python, then read, per entry, in one run:

* ``decode``: the key's bytes -> the generated record (what keys were before);
* ``decode_key``: the same -> a frozen snapshot (hashable, ordered: what keys are now);
* ``items()``: get_next_key + lookup per entry (keys frozen);
* ``lookup_batch()``: BPF_MAP_LOOKUP_BATCH (keys frozen);
* ``dict(items())``, ``sorted(items())``: what the frozen keys are for.

Run: .venv/bin/python benchmarks/bench_maps.py [--entries 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SOURCE = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct key { __u32 pid; __u32 cpu; char comm[8]; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __type(key, struct key);
         __type(value, __u64); } counts SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""


def module(tmp: Path) -> object:
    (tmp / "bm.c").write_text(SOURCE)
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                    "-c", str(tmp / "bm.c"), "-o", str(tmp / "bm.bpf.o")], check=True)
    subprocess.run([sys.executable, "-m", "btfgen", "gen", str(tmp / "bm.bpf.o"), "-o",
                    str(tmp / "bm_skel.py")], check=True)
    spec = importlib.util.spec_from_file_location("bm_skel", tmp / "bm_skel.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bm_skel"] = mod
    spec.loader.exec_module(mod)
    return mod


def per_entry_us(fn: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        mod: object = module(Path(tmp))
        with mod.BmSkel.open_and_load() as skel:  # type: ignore[attr-defined]
            m = skel.maps.counts
            key = mod.Key  # type: ignore[attr-defined]
            m.update_batch([(key(pid=i, cpu=i % 8, comm=b"c%d" % (i % 97)), i)
                            for i in range(a.entries)])
            raw = [m.key_codec.encode(k) for k in m.keys()]
            codec, n, r = m.key_codec, a.entries, a.repeat
            plain, frozen = codec.decode, codec.decode_key
            rows = [
                ("decode (plain record)", per_entry_us(lambda: [plain(b) for b in raw], n, r)),
                ("decode_key (frozen)", per_entry_us(lambda: [frozen(b) for b in raw], n, r)),
                ("items()", per_entry_us(lambda: list(m.items()), n, r)),
                ("lookup_batch()", per_entry_us(lambda: m.lookup_batch(), n, r)),
                ("dict(items())", per_entry_us(lambda: dict(m.items()), n, r)),
                ("sorted(items())", per_entry_us(lambda: sorted(m.items()), n, r)),
            ]
    base = rows[0][1]
    print(f"struct-keyed HASH map, {a.entries} entries, best of {a.repeat}")
    print(f"{'per entry':28s} {'us':>8s} {'x decode':>9s}")
    for name, us in rows:
        print(f"{name:28s} {us:8.2f} {us / base:9.1f}")


if __name__ == "__main__":
    main()
