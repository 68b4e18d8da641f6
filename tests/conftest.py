"""Shared fixtures: the libbpf-tools corpus, compiling BPF C, running the CLI."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from corpus import extract_corpus
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

# CI runs the same examples every time (a landing must not hang on luck); local runs
# explore new ones and keep failures in .hypothesis/ to replay.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

#: Multiarch include dir so <linux/types.h> finds <asm/types.h> with -target bpf.
MULTIARCH_INCLUDE = f"/usr/include/{platform.machine()}-linux-gnu"


@pytest.fixture(scope="session")
def corpus_objects(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The 61 BPF objects embedded in the libbpf-tools binaries, extracted now."""
    objs = extract_corpus(tmp_path_factory.mktemp("corpus"))
    assert len(objs) >= 61, f"expected 61 libbpf-tools objects, found {len(objs)}"
    return objs


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


@pytest.fixture
def bpf_compile(tmp_path: Path) -> CompileFn:
    """``bpf_compile(src, name="prog", clang="clang", target="bpf", cflags=())`` -> .o path."""

    def _compile(src: str, name: str = "prog", **kw: object) -> Path:
        return compile_bpf(src, tmp_path / f"{name}.bpf.o", **kw)  # type: ignore[arg-type]

    return _compile


def run_btfgen(*args: str | os.PathLike[str], cwd: Path | None = None,
               check: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``python -m btfgen ARGS`` and capture its output as text."""
    r = subprocess.run([sys.executable, "-m", "btfgen", *map(str, args)],
                       capture_output=True, text=True, cwd=cwd)
    if check and r.returncode != 0:
        raise AssertionError(f"btfgen {args} exited {r.returncode}:\n{r.stderr}")
    return r
