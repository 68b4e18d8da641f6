"""Symbol resolution speed: 100,000 addresses after the first load.

In one run, the same 100,000 kernel addresses (random, around the text of
vmlinux) are resolved by ``KernelSymbols.resolve`` and by bcc's ``BPF.ksym``
(C symbol cache; Debian's python3 with python3-bpfcc, skipped if missing), and
100,000 user addresses inside this process's libc and python by
``UserSymbols.resolve``.  Loads are timed apart from lookups.

Run: .venv/bin/python benchmarks/bench_symbols.py [--count 100000]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import random
import subprocess
import sys
import time

from btfgen.runtime.symbols import KernelSymbols, UserSymbols

BCC = r"""
import json, sys, time
from bcc import BPF
addrs = json.loads(sys.stdin.read())
t = time.perf_counter(); BPF.ksym(addrs[0]); load = time.perf_counter() - t
t = time.perf_counter()
for a in addrs:
    BPF.ksym(a)
print(json.dumps([load, time.perf_counter() - t]))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000)
    a = ap.parse_args()
    rng = random.Random(1)

    t = time.perf_counter()
    ksyms = KernelSymbols()
    kload = time.perf_counter() - t
    base = ksyms.address("_stext") or ksyms.address("startup_64") or 0
    kaddrs = [base + rng.randrange(0, 1 << 24) for _ in range(a.count)]
    t = time.perf_counter()
    for x in kaddrs:
        ksyms.resolve(x)
    klook = time.perf_counter() - t

    libc = ctypes.CDLL("libc.so.6")
    anchors = [ctypes.cast(libc.getpid, ctypes.c_void_p).value or 0,
               ctypes.cast(ctypes.pythonapi.Py_Initialize, ctypes.c_void_p).value or 0]
    uaddrs = [rng.choice(anchors) + rng.randrange(-1 << 16, 1 << 16) for _ in range(a.count)]
    t = time.perf_counter()
    usyms = UserSymbols(os.getpid())
    usyms.resolve(anchors[0])
    usyms.resolve(anchors[1])
    uload = time.perf_counter() - t
    t = time.perf_counter()
    for x in uaddrs:
        usyms.resolve(x)
    ulook = time.perf_counter() - t

    print(f"{a.count} resolves after load (load apart):")
    print(f"  kernel  btfgen KernelSymbols  load {kload * 1e3:7.1f} ms  "
          f"lookups {klook * 1e3:7.1f} ms  ({klook / a.count * 1e9:5.0f} ns each)")
    r = subprocess.run(["/usr/bin/python3", "-c", BCC], input=json.dumps(kaddrs),
                       capture_output=True, text=True)
    if r.returncode == 0:
        bload, blook = json.loads(r.stdout)
        print(f"  kernel  bcc BPF.ksym           load {bload * 1e3:7.1f} ms  "
              f"lookups {blook * 1e3:7.1f} ms  ({blook / a.count * 1e9:5.0f} ns each)"
              f"  btfgen/bcc = {klook / blook:.2f}x")
    else:
        print("  kernel  bcc: unavailable (" + (r.stderr.strip().splitlines() or ["?"])[-1] + ")")
    print(f"  user    btfgen UserSymbols    load {uload * 1e3:7.1f} ms  "
          f"lookups {ulook * 1e3:7.1f} ms  ({ulook / a.count * 1e9:5.0f} ns each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
