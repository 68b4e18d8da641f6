"""How a generated module embeds its object: size and import time.

A ``clang -g`` program that includes vmlinux.h (the usual libbpf-tools build) is
compiled; its module is generated four ways -- the object with or without its
DWARF, embedded as hex (``bytes.fromhex``) or as zlib + base64 -- and each is
imported in fresh interpreters, with bytecode caches (after one warm-up import)
and without (compiled from source).  Import times are CPU seconds of the import
statement, medians over the repetitions, shown with ratios to the default
(stripped, zlib + base64) in the same run.

Run: .venv/bin/python benchmarks/bench_embed.py [--reps 7]
"""

from __future__ import annotations

import argparse
import binascii
import os
import re
import statistics
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
char LICENSE[] SEC("license") = "GPL";
struct event { int pid; char comm[16]; };
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
SEC("tracepoint/syscalls/sys_enter_getpid")
int handle(void *ctx) {
    struct task_struct *t = (void *)bpf_get_current_task();
    struct event *e = bpf_ringbuf_reserve(&rb, sizeof(*e), 0);
    if (!e) return 0;
    e->pid = BPF_CORE_READ(t, tgid);
    bpf_get_current_comm(e->comm, 16);
    bpf_ringbuf_submit(e, 0);
    return 0;
}
"""
_BLOCK = re.compile(r"_OBJECT = zlib\.decompress\(binascii\.a2b_base64\(\n(.*?)\n\)\)\n", re.S)


def as_hex(text: str) -> str:
    """The same module with its object as ``bytes.fromhex`` (btfgen before issue 17)."""
    m = _BLOCK.search(text)
    assert m is not None
    data = zlib.decompress(binascii.a2b_base64("".join(re.findall(r'"(.*)"', m.group(1)))))
    hexed = data.hex()
    lines = "\n".join(f'    "{hexed[i:i + 92]}"' for i in range(0, len(hexed), 92))
    return text[:m.start()] + f"_OBJECT = bytes.fromhex(\n{lines}\n)\n" + text[m.end():]


def import_cpu(path: Path, cached: bool) -> float:
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); t = time.process_time();"
            f" import {path.stem}; print(time.process_time() - t)")
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not cached:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        for pyc in path.parent.glob("__pycache__/*.pyc"):
            pyc.unlink()
    r = subprocess.run([sys.executable, "-c", code, str(path.parent)], env=env,
                       capture_output=True, text=True, check=True)
    return float(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    reps = ap.parse_args().reps
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with open(tmp / "vmlinux.h", "wb") as f:
            subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux",
                            "format", "c"], stdout=f, check=True)
        (tmp / "p.bpf.c").write_text(SRC)
        arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, "x86")
        subprocess.run(["clang", "-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{arch}",
                        "-I", str(tmp), "-c", str(tmp / "p.bpf.c"), "-o", str(tmp / "p.bpf.o")],
                       check=True)
        from btfgen.gen.module import generate_module
        from btfgen.gen.options import GenOptions

        variants: dict[str, Path] = {}
        for debug in (False, True):
            text = generate_module(str(tmp / "p.bpf.o"), GenOptions(keep_debug=debug)).text
            for enc, body in (("zlib+b64", text), ("hex", as_hex(text))):
                name = f"{'with' if debug else 'without'} DWARF, {enc}"
                d = tmp / f"v{len(variants)}"
                d.mkdir()
                path = d / f"mod{len(variants)}.py"
                path.write_text(body)
                variants[name] = path
        times: dict[tuple[str, bool], list[float]] = {}
        for path in variants.values():
            import_cpu(path, True)  # write the bytecode cache
        for _ in range(reps):
            for name, path in variants.items():
                for cached in (True, False):
                    times.setdefault((name, cached), []).append(import_cpu(path, cached))
        print(f"object: {(tmp / 'p.bpf.o').stat().st_size} bytes (clang -g, vmlinux.h);"
              f" medians of {reps} fresh-interpreter imports")
        ref = "without DWARF, zlib+b64"
        print(f"{'module':<28}{'size':>10}{'import (pyc)':>16}{'ratio':>7}"
              f"{'import (no pyc)':>18}{'ratio':>7}")
        for name, path in variants.items():
            med = {c: statistics.median(times[(name, c)]) for c in (True, False)}
            base = {c: statistics.median(times[(ref, c)]) for c in (True, False)}
            print(f"{name:<28}{path.stat().st_size:>10}{med[True] * 1000:>13.1f} ms"
                  f"{med[True] / base[True]:>7.2f}{med[False] * 1000:>15.1f} ms"
                  f"{med[False] / base[False]:>7.2f}")


if __name__ == "__main__":
    main()
