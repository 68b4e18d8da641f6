"""Time ``btfgen dump FILE --format raw`` against bpftool, and the parse alone.

    python benchmarks/bench_dump.py [--file /sys/kernel/btf/vmlinux] [--reps 5]

Both commands run in the same session, interleaved, their stdout thrown away;
the table gives the median wall time of each and the ratio.  Goals: the dump
within 5x bpftool, ``parse_btf`` of vmlinux within 1 s.  ``parse_btf`` is timed
in process twice: as installed (the compiled decoder, when built) and with the
pure-Python reference loop alone, as without a compiler.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

from btfgen import btf_decode_fast
from btfgen.btf_parse import parse_btf

GOAL_RATIO = 5.0
GOAL_PARSE_S = 1.0


# An installed btfgen runs from cached bytecode (pip compiles it); a sandbox that sets
# PYTHONDONTWRITEBYTECODE would make every run recompile every module instead.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(cmd: list[str]) -> float:
    """Seconds taken by ``cmd`` (stdout discarded); fails loudly if it fails."""
    t0 = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True, env=ENV)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default="/sys/kernel/btf/vmlinux")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        print("bpftool not found", file=sys.stderr)
        return 1
    ref_cmd = [bpftool, "btf", "dump", "file", args.file, "format", "raw"]
    our_cmd = [sys.executable, "-m", "btfgen", "dump", args.file, "--format", "raw"]
    with open(args.file, "rb") as f:
        data = f.read()

    ref, ours, parse, parse_py = [], [], [], []
    compiled = btf_decode_fast.decode
    wall(ref_cmd), wall(our_cmd)  # warm the page cache and imports
    for _ in range(args.reps):
        ref.append(wall(ref_cmd))
        ours.append(wall(our_cmd))
        t0 = time.perf_counter()
        btf = parse_btf(data)
        parse.append(time.perf_counter() - t0)
        btf_decode_fast.decode = lambda *_args: None  # type: ignore[assignment]
        t0 = time.perf_counter()
        parse_btf(data)
        parse_py.append(time.perf_counter() - t0)
        btf_decode_fast.decode = compiled

    m_ref, m_ours, m_parse, m_py = map(statistics.median, (ref, ours, parse, parse_py))
    ratio = m_ours / m_ref
    print(f"{args.file}: {len(data)} bytes, {len(btf.types)} types, {args.reps} reps (median)")
    print(f"{'measure':<34} {'seconds':>8} {'goal':>14} {'ok':>3}")
    print(f"{'bpftool btf dump ... format raw':<34} {m_ref:8.3f} {'reference':>14}")
    print(f"{'btfgen dump --format raw':<34} {m_ours:8.3f} {'':>14}")
    print(f"{'  ratio btfgen / bpftool':<34} {ratio:8.2f}x {f'<= {GOAL_RATIO:g}x':>13}"
          f" {'yes' if ratio <= GOAL_RATIO else 'NO':>3}")
    how = "compiled decoder" if btf_decode_fast.AVAILABLE else "no compiled decoder"
    print(f"{f'parse_btf alone ({how})':<34} {m_parse:8.3f} {f'<= {GOAL_PARSE_S:g} s':>14}"
          f" {'yes' if m_parse <= GOAL_PARSE_S else 'NO':>3}")
    print(f"{'parse_btf, Python reference loop':<34} {m_py:8.3f} {f'<= {GOAL_PARSE_S:g} s':>14}"
          f" {'yes' if m_py <= GOAL_PARSE_S else 'NO':>3}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
