"""Builders shared by the tests: compiling BPF C, running the CLI, where things are."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

#: The checkout.
ROOT = Path(__file__).resolve().parents[2]
#: BPF C sources the tests share (``tests/data``).
DATA = ROOT / "tests" / "data"

#: Multiarch include dir so <linux/types.h> finds <asm/types.h> with -target bpf.
MULTIARCH_INCLUDE = f"/usr/include/{platform.machine()}-linux-gnu"

CompileFn = Callable[..., Path]


def compile_bpf(src: str, out: Path, *, clang: str = "clang", target: str = "bpf",
                cflags: Sequence[str] = ()) -> Path:
    """Compile BPF C source text to ``out`` with ``clang -g -O2 -target TARGET``."""
    c_file = out.with_suffix(".c")
    c_file.write_text(src)
    cmd = [clang, "-g", "-O2", "-target", target, "-I", MULTIARCH_INCLUDE,
           "-I", str(ROOT / "btfgen" / "include"), *cflags, "-c", str(c_file), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return out


def run_btfgen(*args: str | os.PathLike[str], cwd: Path | None = None,
               check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``python -m btfgen ARGS`` and capture its output as text."""
    r = subprocess.run([sys.executable, "-m", "btfgen", *map(str, args)],
                       capture_output=True, text=True, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"btfgen {args} exited {r.returncode}:\n{r.stderr}")
    return r
