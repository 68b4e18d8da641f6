"""Run the benchmarks in turn (``make bench``): the quick ones by default.

    .venv/bin/python benchmarks/run_all.py [--all] [--only NAME ...]

Quick: every ``bench_*.py`` here, with its default settings.  ``--all`` adds
the long runs (``soak.py``, ``fuzz_long.py``).  Each script prints its own
table (and writes benchmarks/results/ where it has a results file); this
prints which ones ran, how long they took, and their exit status.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LONG = ["soak.py", "fuzz_long.py"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also the long runs: " + ", ".join(LONG))
    ap.add_argument("--only", nargs="*", default=None, help="script names to run")
    a = ap.parse_args()
    scripts = sorted(p.name for p in HERE.glob("bench_*.py"))
    if a.all:
        scripts += [s for s in LONG if (HERE / s).exists()]
    if a.only:
        scripts = [s for s in scripts if s in a.only or s.removesuffix(".py") in a.only]
    summary = []
    for name in scripts:
        print(f"\n=== {name} ===", flush=True)
        t = time.perf_counter()
        rc = subprocess.run([sys.executable, str(HERE / name)], cwd=str(HERE.parent)).returncode
        summary.append((name, rc, time.perf_counter() - t))
    print("\n=== summary ===")
    for name, rc, secs in summary:
        print(f"  {name:24s} {'ok' if rc == 0 else f'exit {rc}':8s} {secs:7.1f} s")
    return 0 if all(rc == 0 for _, rc, _ in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
