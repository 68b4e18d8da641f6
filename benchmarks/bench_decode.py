"""Decode speed: a 40-byte record into a Python object.

``struct event { u32 pid, tid; u64 ts; char comm[16]; u32 uid; s32 ret; }``
(40 bytes) is compiled for BPF and generated with ``btfgen gen``; then, in the
same run, per record:

* ``Event.from_bytes(buf)`` -- the generated dataclass (goal <= 0.5 us);
* ctypes ``Event.from_buffer_copy(buf)`` -- the usual ctypes way;
* the bcc way: ``ctypes.cast(addr, POINTER(Event)).contents`` on a raw address;

each alone ("decode") and followed by reading all six fields ("decode+read"):
ctypes objects are lazy, so their fields cost at access, while the dataclass
has already converted them (``comm`` cut at the NUL, as bcc users do by hand).

Run: .venv/bin/python benchmarks/bench_decode.py [--number 200000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import ctypes as ct
import importlib.util
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SOURCE = r"""
#include <linux/types.h>
struct event { __u32 pid, tid; __u64 ts; char comm[16]; __u32 uid; __s32 ret; };
struct event last_event;
"""


class CEvent(ct.Structure):
    _fields_ = [("pid", ct.c_uint32), ("tid", ct.c_uint32), ("ts", ct.c_uint64),
                ("comm", ct.c_char * 16), ("uid", ct.c_uint32), ("ret", ct.c_int32)]


def generated_module(tmp: Path) -> object:
    src = tmp / "ev.c"
    src.write_text(SOURCE)
    obj = tmp / "ev.bpf.o"
    subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu",
                    "-c", str(src), "-o", str(obj)], check=True)
    out = tmp / "ev_skel.py"
    subprocess.run([sys.executable, "-m", "btfgen", "gen", str(obj), "-o", str(out)], check=True)
    spec = importlib.util.spec_from_file_location("ev_skel", out)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["ev_skel"] = mod
    spec.loader.exec_module(mod)
    return mod


def best_us(stmt: str, env: dict[str, object], number: int, repeat: int) -> float:
    return min(timeit.repeat(stmt, globals=env, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        mod = generated_module(Path(d))
    Event = mod.Event  # type: ignore[attr-defined]
    assert Event.SIZE == ct.sizeof(CEvent) == 40
    raw = CEvent(1234, 1235, 10**15, b"bash", 1000, -2)
    buf = bytes(raw)
    cbuf = ct.create_string_buffer(buf, len(buf))
    addr = ct.addressof(cbuf)
    PE = ct.POINTER(CEvent)
    e = Event.from_bytes(buf)
    assert (e.pid, e.tid, e.ts, e.comm, e.uid, e.ret) == (1234, 1235, 10**15, b"bash", 1000, -2)
    env = {"Event": Event, "CEvent": CEvent, "buf": buf, "addr": addr, "ct": ct, "PE": PE}
    read = "; (x.pid, x.tid, x.ts, x.comm, x.uid, x.ret)"
    cases = [
        ("btfgen Event.from_bytes", "x = Event.from_bytes(buf)"),
        ("ctypes from_buffer_copy", "x = CEvent.from_buffer_copy(buf)"),
        ("bcc ctypes cast", "x = ct.cast(addr, PE).contents"),
    ]
    print(f"python {sys.version.split()[0]}, best of {args.repeat} x {args.number}")
    print(f"{'':28} {'decode us':>10} {'decode+read us':>15}")
    results = {}
    for name, stmt in cases:
        alone = best_us(stmt, env, args.number, args.repeat)
        full = best_us(stmt + read, env, args.number, args.repeat)
        results[name] = (alone, full)
        print(f"{name:28} {alone:10.3f} {full:15.3f}")
    ours = results["btfgen Event.from_bytes"]
    for name in ("ctypes from_buffer_copy", "bcc ctypes cast"):
        ref = results[name]
        print(f"ratio btfgen / {name}: decode {ours[0] / ref[0]:.2f}, "
              f"decode+read {ours[1] / ref[1]:.2f}")
    print(f"goal <= 0.5 us per record: {'met' if ours[0] <= 0.5 else 'NOT met'}"
          f" ({ours[0]:.3f} us)")


if __name__ == "__main__":
    main()
