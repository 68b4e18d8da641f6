"""What the runtime says when the system or the caller is wrong: an old libbpf, a
mistyped global, a least-privilege user who cannot read tracefs, and the count of
further callback exceptions on every supported Python."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path
from types import ModuleType

import pytest

from btfgen.runtime.errors import _add_note
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import load
from tests.helpers.unprivileged import NOBODY, nobody_site, run_as_nobody

GLOBALS_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
const volatile int targ_pid = 0;
const volatile int targ_uid = 0;
int count = 0;
SEC("tp/syscalls/sys_enter_getppid")
int handle(void *ctx) { if (targ_pid == 1 || targ_uid == 2) count++; return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def skel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("messages")
    compile_bpf(GLOBALS_SRC, d / "globs.bpf.o")
    run_btfgen("gen", d / "globs.bpf.o", "-o", d / "globs_skel.py", check=True)
    return d


@pytest.fixture(scope="module")
def globs(skel_dir: Path) -> ModuleType:
    return load(skel_dir / "globs_skel.py")


def test_mistyped_global_raises_naming_the_section_and_close_names(globs: ModuleType) -> None:
    with globs.GlobsSkel.open() as skel:
        skel.rodata.targ_pid = 7
        with pytest.raises(AttributeError) as exc:
            skel.rodata.targ_pidd = 1
        assert str(exc.value) == ("section .rodata has no global 'targ_pidd'; did you mean"
                                  " targ_pid or targ_uid?")
        with pytest.raises(AttributeError, match=r"^section \.bss has no global 'cuont'; "
                           r"did you mean count\?$"):
            print(skel.bss.cuont)
        with pytest.raises(AttributeError, match=r"^section \.bss has no global 'zzz'; its "
                           r"globals: count$"):
            skel.bss.zzz = 1
        assert skel.rodata.targ_pid == 7 and skel.rodata.targ_uid == 0
        assert skel.rodata.read_bytes()[:8] == (7).to_bytes(4, "little") + bytes(4)
        assert type(skel.rodata).globals() == ["targ_pid", "targ_uid"]


def _fake_libbpf(tmp_path: Path, major: int, minor: int) -> Path:
    """A shared object that answers libbpf's version calls and has nothing else."""
    src = tmp_path / "fake_libbpf.c"
    src.write_text(f"unsigned libbpf_major_version(void) {{ return {major}; }}\n"
                   f"unsigned libbpf_minor_version(void) {{ return {minor}; }}\n")
    so = tmp_path / f"libbpf.so.{major}.{minor}"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", so, src], check=True)
    return so


OPEN_SCRIPT = """
import globs_skel
from btfgen.runtime import LibbpfMissingError
try:
    globs_skel.GlobsSkel.open()
except LibbpfMissingError as e:
    print(e)
"""


@pytest.mark.parametrize(("version", "expected"), [
    ((0, 5), "{so} is libbpf 0.5, older than the libbpf 1.0 btfgen needs: install a newer one"),
    ((1, 0), "{so} (libbpf 1.0) lacks libbpf_set_print, libbpf_version_string,"
             " libbpf_num_possible_cpus ..., which btfgen calls: install a newer one"),
])
def test_old_or_incomplete_libbpf_is_one_sentence_with_the_fix(
        skel_dir: Path, tmp_path: Path, version: tuple[int, int], expected: str) -> None:
    so = _fake_libbpf(tmp_path, *version)
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", OPEN_SCRIPT],
                       cwd=skel_dir, capture_output=True, text=True,
                       env={**os.environ, "BTFGEN_LIBBPF": str(so)})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    (line,) = r.stdout.splitlines()
    assert line.startswith(expected.format(so=so)), line
    assert line.endswith("and, if it is not the system's libbpf.so.1, point BTFGEN_LIBBPF at it")


def test_further_callback_exceptions_are_counted_on_every_python() -> None:
    exc = LookupError(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _add_note(exc, "9 more callback exceptions in the same poll")
    assert exc.__notes__ == ["9 more callback exceptions in the same poll"]
    if sys.version_info >= (3, 11):  # tracebacks print __notes__
        assert caught == []
    else:  # 3.10 tracebacks do not: the count goes to stderr as a warning as well
        (w,) = caught
        assert w.category is RuntimeWarning
        assert str(w.message) == "LookupError: 9 more callback exceptions in the same poll"


# -- a least-privilege user: CAP_BPF + CAP_PERFMON, not root --------------------------------

ATTACH_SCRIPT = """
import json, os, globs_skel
from btfgen.runtime import TracefsError
out = {"uid": os.getuid()}
with globs_skel.GlobsSkel.open() as skel:
    skel.load()
    out["loaded"] = True
    try:
        skel.attach()
        out["attached"] = True
    except TracefsError as e:
        out["error"] = str(e)
print(json.dumps(out))
"""


@pytest.mark.live
def test_unreadable_tracefs_is_reported_as_such_to_a_capable_non_root_user(
        skel_dir: Path) -> None:
    tracefs = Path("/sys/kernel/tracing")
    mode = stat.S_IMODE(tracefs.stat().st_mode)
    if mode & 0o005 == 0o005:
        pytest.skip(f"{tracefs} is mode {mode:04o} here: readable by everyone, nothing to report")
    with nobody_site() as (python, site):
        shutil.copy(skel_dir / "globs_skel.py", site)
        r = run_as_nobody(python, site, ["-c", ATTACH_SCRIPT])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["uid"] == NOBODY and out["loaded"] and "attached" not in out
    assert out["error"] == (
        f"tracefs is mounted at {tracefs} but uid {NOBODY} cannot read it (mode {mode:04o},"
        f" owner uid 0 gid 0), and attaching tracepoints, uprobes and USDT probes reads it; run"
        f" as root, or give this user access (e.g. chmod 0755 {tracefs}, or a group: chgrp GROUP"
        f" {tracefs}; chmod 0750 {tracefs})")
