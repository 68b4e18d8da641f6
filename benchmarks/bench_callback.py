"""C -> Python callback cost: cffi ABI mode (ffi.callback) against API mode (extern "Python").

The runtime drains libbpf's perf/ring buffers through one C -> Python callback per
record, so the cost of that call decides between cffi's ABI mode (no compiler at
install) and API mode (a compiled extension).  Both are measured in the same run
on a C loop that calls the callback N times with a 48-byte record, once with a
callback that only counts and once with one that also decodes the record.  A C
callback is the reference.  Then, if BPF works here, a live perf buffer: CPU per
received event for the runtime's real (ABI) path.

Run: .venv/bin/python benchmarks/bench_callback.py [--n 200000] [--reps 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cffi import FFI

DRIVER = """
typedef int (*cb_t)(void *ctx, int cpu, void *data, unsigned int size);
static int drive(cb_t cb, void *ctx, int n)
{
    unsigned char rec[48];
    int i, s = 0;
    for (i = 0; i < 48; i++) rec[i] = (unsigned char)i;
    for (i = 0; i < n; i++) { rec[0] = (unsigned char)i; s += cb(ctx, i & 1, rec, 48); }
    return s;
}
static int c_count(void *ctx, int cpu, void *data, unsigned int size)
{ (void)cpu; (void)data; (void)size; ++*(long *)ctx; return 0; }
static cb_t c_cb(void) { return c_count; }
"""
CDEF = """
typedef int (*cb_t)(void *ctx, int cpu, void *data, unsigned int size);
int drive(cb_t cb, void *ctx, int n);
cb_t c_cb(void);
extern "Python" int py_count(void *, int, void *, unsigned int);
extern "Python" int py_decode(void *, int, void *, unsigned int);
"""
REC = struct.Struct("<QQIIhBx16sI")  # 48 bytes, like a typical event record


def build(tmp: Path) -> Any:
    """Compile the API-mode module (needs a C compiler, as API mode would at install)."""
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source("_bench_cb", DRIVER)
    so = ffi.compile(tmpdir=str(tmp), verbose=False)
    spec = importlib.util.spec_from_file_location("_bench_cb", so)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measure(fn: Any, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        out.append(time.process_time() - t)
    return out


def micro(n: int, reps: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory() as tmp:
        mod = build(Path(tmp))
    api_ffi, lib = mod.ffi, mod.lib
    count = [0]
    sink: list[Any] = []

    @api_ffi.def_extern()  # type: ignore[misc]
    def py_count(ctx: Any, cpu: int, data: Any, size: int) -> int:
        count[0] += 1
        return 0

    @api_ffi.def_extern()  # type: ignore[misc]
    def py_decode(ctx: Any, cpu: int, data: Any, size: int) -> int:
        sink.append(REC.unpack_from(api_ffi.buffer(data, size)))
        return 0

    abi = FFI()
    abi.cdef("typedef int (*cb_t)(void *ctx, int cpu, void *data, unsigned int size);")

    def abi_count_fn(ctx: Any, cpu: int, data: Any, size: int) -> int:
        count[0] += 1
        return 0

    def abi_decode_fn(ctx: Any, cpu: int, data: Any, size: int) -> int:
        sink.append(REC.unpack_from(abi.buffer(data, size)))
        return 0

    abi_count = abi.callback("cb_t", abi_count_fn)
    abi_decode = abi.callback("cb_t", abi_decode_fn)
    # ABI-mode callbacks are handed to C as plain function pointers.
    as_cb = api_ffi.cast("cb_t", abi.cast("uintptr_t", abi_count))
    as_cb_dec = api_ffi.cast("cb_t", abi.cast("uintptr_t", abi_decode))
    ctr = api_ffi.new("long *")
    cases = {
        "C callback (reference)": lambda: lib.drive(lib.c_cb(), ctr, n),
        "ABI ffi.callback, count": lambda: lib.drive(as_cb, api_ffi.NULL, n),
        'API extern "Python", count': lambda: lib.drive(lib.py_count, api_ffi.NULL, n),
        "ABI ffi.callback, decode": lambda: (lib.drive(as_cb_dec, api_ffi.NULL, n), sink.clear()),
        'API extern "Python", decode': lambda: (lib.drive(lib.py_decode, api_ffi.NULL, n),
                                                sink.clear()),
    }
    results: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(reps):  # interleaved repetitions
        for name, fn in cases.items():
            results[name].extend(measure(fn, 1))
    return results


def live(n: int, reps: int) -> list[float] | str:
    """CPU per received event of the runtime's perf buffer path (seconds/event)."""
    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    try:
        from tests.helpers.runtime_zoo import ZOO_SRC, Event, open_zoo
    except ImportError as e:
        return f"skipped ({e})"
    with tempfile.TemporaryDirectory() as tmp:
        obj = Path(tmp) / "zoo.bpf.o"
        (Path(tmp) / "zoo.bpf.c").write_text(ZOO_SRC)
        r = subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I",
                            "/usr/include/x86_64-linux-gnu", "-c", str(Path(tmp) / "zoo.bpf.c"),
                            "-o", str(obj)], capture_output=True, text=True)
        if r.returncode:
            return f"skipped (clang failed: {r.stderr.strip()[:200]})"
        try:
            o, maps = open_zoo(obj.read_bytes(), os.getpid())
        except Exception as e:  # noqa: BLE001 - report why, do not fail
            return f"skipped (kernel refused BPF: {e})"
    per_event = []
    try:
        got = [0]

        def cb(cpu: int, rec: Event) -> None:
            got[0] += 1

        pb = maps["events"].open_perf_buffer(cb, page_count=256)
        batch = 2000
        for _ in range(reps):
            cpu = 0.0
            got[0] = 0
            for _ in range(n // batch):
                for _ in range(batch):
                    os.getppid()
                t = time.process_time()
                pb.consume()
                cpu += time.process_time() - t
            per_event.append(cpu / max(got[0], 1))
        pb.close()
    finally:
        o.close()
    return per_event


def fmt(xs: list[float], n: int) -> str:
    per = [x / n * 1e9 for x in xs]
    return f"{statistics.median(per):8.1f} ns  (min {min(per):.1f}, max {max(per):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    res = micro(a.n, a.reps)
    print(f"C -> Python callback, {a.n} calls x {a.reps} interleaved reps, CPU per call:")
    for name, xs in res.items():
        print(f"  {name:32s} {fmt(xs, a.n)}")
    med = {k: statistics.median(v) for k, v in res.items()}
    for what in ("count", "decode"):
        ratio = med[f"ABI ffi.callback, {what}"] / med[f'API extern "Python", {what}']
        print(f"  ratio ABI/API, {what:6s}: {ratio:.2f}")
    lv = live(min(a.n, 40_000), a.reps)
    if isinstance(lv, str):
        print(f"live perf buffer: {lv}")
    else:
        print(f"live perf buffer (runtime, ABI, typed record):       {fmt(lv, 1)} per event")


if __name__ == "__main__":
    main()
