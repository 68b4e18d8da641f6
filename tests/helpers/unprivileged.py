"""Running btfgen as a least-privilege user: uid 65534 with CAP_BPF + CAP_PERFMON only.

pyenv's interpreters live under /root (mode 0700), and pytest's tmp_path under a mode
0700 folder too: :func:`nobody_site` finds an interpreter that uid may run and fills a
world-readable folder with btfgen's sources (without compiled parts) and cffi.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
BPF_CAPS = "-all,+bpf,+perfmon"


def setpriv(caps: str = BPF_CAPS) -> list[str]:
    """The ``setpriv`` prefix that runs a command as uid/gid 65534 keeping ``caps``."""
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
            f"--inh-caps={caps}", f"--ambient-caps={caps}", f"--bounding-set={caps}"]


def _version_as_nobody(python: str) -> tuple[int, int] | None:
    r = subprocess.run([*setpriv(), python, "-c", "import sys; print(*sys.version_info[:2])"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    major, minor = r.stdout.split()
    return int(major), int(minor)


@contextmanager
def nobody_site() -> Iterator[tuple[str, Path]]:
    """``(python, site)``: an interpreter uid 65534 may run and a folder for PYTHONPATH
    holding btfgen and cffi; skips (saying why) where that is impossible."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv (util-linux) to drop to an unprivileged uid")
    found = [(p, v) for p in ("/usr/bin/python3", "/usr/local/bin/python3")
             if os.path.exists(p) and (v := _version_as_nobody(p))]
    if not found:
        pytest.skip("no Python interpreter an unprivileged uid may run")
    python, (major, minor) = found[0]
    site = Path(tempfile.mkdtemp(prefix=f"btfgen-nobody-{os.getpid()}-"))
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", site,
                        "--no-deps", "--only-binary=:all:", "--python-version",
                        f"{major}.{minor}", "--implementation", "cp", "cffi", "pycparser"],
                       check=True, capture_output=True)
        shutil.copytree(ROOT / "btfgen", site / "btfgen",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        yield python, site
    finally:
        shutil.rmtree(site)


def run_as_nobody(python: str, site: Path, args: Sequence[str], caps: str = BPF_CAPS,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -X faulthandler ARGS`` in ``site`` as uid 65534 with ``caps``."""
    site.chmod(0o755)
    for path in site.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return subprocess.run([*setpriv(caps), python, "-X", "faulthandler", *args], cwd=site,
                          capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "PYTHONPATH": str(site),
                               "PYTHONDONTWRITEBYTECODE": "1", **(env or {})})
