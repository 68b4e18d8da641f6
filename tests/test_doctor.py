"""``btfgen --version`` and ``btfgen doctor`` report what is really there."""

from __future__ import annotations

import importlib.util
import os
import platform
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from btfgen import __version__
from btfgen.doctor import COMPILED_PARTS
from tests.helpers.build import ROOT, run_btfgen
from tests.helpers.unprivileged import NOBODY, nobody_site, run_as_nobody

INSTALLED = (f"installed in {ROOT / 'btfgen'}, Python {platform.python_version()}"
             f" ({sys.executable})")


def _system_libbpf() -> tuple[str, str]:
    """(version, file) of the libbpf.so.1 the dynamic linker finds, from ldconfig."""
    r = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True)
    link = next(line.rsplit(" => ", 1)[1] for line in r.stdout.splitlines()
                if line.strip().startswith("libbpf.so.1 "))
    real = os.path.realpath(link)  # .../libbpf.so.1.1.2
    major, minor = re.fullmatch(r"libbpf\.so\.(\d+)\.(\d+)\.\d+", os.path.basename(real)).groups()
    return f"{major}.{minor}", real


def _compiled_lines() -> list[str]:
    lines = []
    for name in COMPILED_PARTS:
        spec = importlib.util.find_spec(name)
        short = name.rpartition(".")[2]
        lines.append(f"{short}: built ({spec.origin})" if spec else f"{short}: not built")
    return lines


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is installed by make setup"
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return next(ln.strip() for ln in out.splitlines() if re.search(r"\d", ln)) + f" ({path})"


def test_version_reports_compiled_parts_and_the_libbpf_in_use() -> None:
    r = run_btfgen("--version", check=True)
    version, path = _system_libbpf()
    lines = r.stdout.splitlines()
    assert lines[:2] == [f"btfgen {__version__}", f"  {INSTALLED}"]
    assert [ln.strip() for ln in lines[2:5]] == _compiled_lines()
    assert lines[5] == f"  libbpf: {version} ({path})"
    assert len(lines) == 6 and r.stderr == ""


def test_doctor_reports_this_machine() -> None:
    r = run_btfgen("doctor", check=True)
    rows = [tuple(part.strip() for part in line.split(":", 1)) for line in r.stdout.splitlines()]
    report = dict(rows)
    version, path = _system_libbpf()
    assert report["btfgen"] == f"{__version__}, {INSTALLED}"
    assert [text for label, text in rows if label == "compiled"] == _compiled_lines()
    assert report["libbpf"] == f"{version} ({path})"
    assert report["kernel"] == f"{platform.release()} ({platform.machine()})"
    btf = "/sys/kernel/btf/vmlinux"
    assert report["kernel BTF"] == f"present ({btf}, {os.path.getsize(btf)} bytes)"
    mode = stat.S_IMODE(os.stat("/sys/kernel/tracing").st_mode)
    assert report["tracefs"] == f"mounted at /sys/kernel/tracing (mode {mode:04o}), readable"
    assert report["privileges"].startswith(f"uid {os.geteuid()}, effective ")
    if os.geteuid() == 0:
        assert "CAP_BPF" in report["privileges"].split(":")[0]
        assert report["privileges"].endswith(": loads and attaches tracing programs")
    assert report["clang"] == _tool("clang")
    assert report["bpftool"] == _tool("bpftool")


def test_doctor_names_a_missing_tool_and_an_unusable_libbpf(tmp_path: Path) -> None:
    env = {**os.environ, "BTFGEN_CLANG": str(tmp_path / "no-clang"),
           "BTFGEN_LIBBPF": str(tmp_path / "libbpf.so.1")}
    r = subprocess.run([sys.executable, "-m", "btfgen", "doctor"], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0, r.stderr
    report = dict(tuple(p.strip() for p in ln.split(":", 1)) for ln in r.stdout.splitlines())
    assert report["clang"] == f"not found ({tmp_path / 'no-clang'}; set BTFGEN_CLANG to use" \
        " another)"
    assert report["libbpf"].startswith(f"unusable -- cannot load BTFGEN_LIBBPF={tmp_path}/")


@pytest.fixture(scope="module")
def nobody() -> Iterator[tuple[str, Path]]:
    with nobody_site() as python_and_site:
        yield python_and_site


@pytest.mark.parametrize(("caps", "expected"), [
    ("-all,+bpf,+perfmon", "effective CAP_PERFMON CAP_BPF: loads and attaches tracing programs"),
    ("-all,+bpf", "effective CAP_BPF: loads BPF but cannot attach tracing programs"
                  " (no CAP_PERFMON)"),
    ("-all", "effective none: cannot load BPF programs (needs root, or CAP_BPF + CAP_PERFMON)"),
])
def test_doctor_as_a_least_privilege_user(nobody: tuple[str, Path], caps: str,
                                          expected: str) -> None:
    python, site = nobody
    r = run_as_nobody(python, site, ["-m", "btfgen", "doctor"], caps=caps)
    assert r.returncode == 0, r.stderr
    report = dict(tuple(p.strip() for p in ln.split(":", 1)) for ln in r.stdout.splitlines())
    assert report["privileges"] == f"uid {NOBODY}, {expected}"
    mode = stat.S_IMODE(os.stat("/sys/kernel/tracing").st_mode)
    if not mode & 0o005 == 0o005:
        assert report["tracefs"] == (
            f"mounted at /sys/kernel/tracing (mode {mode:04o}), not readable by uid {NOBODY}"
            " -- attaching tracepoints, uprobes and USDT probes will fail")
    # the copy has no compiled parts: said, with what runs instead
    compiled = [text for ln in r.stdout.splitlines() if ln.startswith("compiled:")
                for text in [ln.split(":", 1)[1].strip()]]
    assert compiled == [
        "_drain: not built -- perf/ring buffers use libbpf's per-record callbacks; reinstall"
        " with a C compiler and Python's headers (e.g. apt install gcc python3-dev)",
        "_records: not built -- records are built in Python; reinstall with a C compiler and"
        " Python's headers (e.g. apt install gcc python3-dev)",
        "_btf_decode: not built -- BTF is decoded in Python (vmlinux ~4x slower); reinstall"
        " with a C compiler and Python's headers (e.g. apt install gcc python3-dev)"]


def test_version_names_the_libbpf_chosen_by_btfgen_libbpf(tmp_path: Path) -> None:
    version, system = _system_libbpf()
    copy = tmp_path / "libbpf-copy.so"
    shutil.copy(system, copy)
    r = subprocess.run([sys.executable, "-m", "btfgen", "--version"], capture_output=True,
                       text=True, env={**os.environ, "BTFGEN_LIBBPF": str(copy)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == f"  libbpf: {version} ({copy})"
