"""Generation time against struct width: a ``--header`` struct of N int members.

Generation was quadratic in the number of members (each slot's overlap test
scanned every slot before it); it is linear now.  The table gives CPU seconds
of ``generate_module`` for N = 2k, 4k, 8k and 16k members and the ratio to the
previous width: ~2 is linear, ~4 quadratic.

Run: .venv/bin/python benchmarks/bench_wide_struct.py
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
SEC("xdp") int prog(void *ctx) { return 2; }
"""


def main() -> None:
    from btfgen.gen.module import generate_module
    from btfgen.gen.options import GenOptions

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        (tmp / "p.bpf.c").write_text(PROG)
        multiarch = f"-I/usr/include/{os.uname().machine}-linux-gnu"
        subprocess.run(["clang", "-g", "-O2", "-target", "bpf", multiarch, "-c",
                        str(tmp / "p.bpf.c"), "-o", str(tmp / "p.bpf.o")], check=True)
        prev = None
        print(f"{'members':>8}{'cpu s':>10}{'ratio':>8}")
        for n in (2048, 4096, 8192, 16384):
            h = tmp / f"w{n}.h"
            h.write_text("struct wide {\n" + "".join(f"  int m{i};\n" for i in range(n)) + "};\n")
            t = time.process_time()
            generate_module(str(tmp / "p.bpf.o"), GenOptions(
                header=str(h), events={"events": "struct wide"}))
            secs = time.process_time() - t
            ratio = f"{secs / prev:8.2f}" if prev else f"{'':>8}"
            print(f"{n:>8}{secs:>10.2f}{ratio}")
            prev = secs


if __name__ == "__main__":
    main()
