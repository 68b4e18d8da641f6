"""Outputs are files the user named; inputs are bounded.

``gen -o`` writes through symlinks, writes device nodes and FIFOs in place, keeps
an existing file's mode and refuses a directory in one line; ``gen``/``dump``/
``info`` refuse inputs that cannot be sized (``/dev/zero``, a FIFO) in one line
instead of reading without bound or blocking."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from btfgen.elf.reader import read_input_bytes
from btfgen.errors import ObjectError
from tests.helpers.build import compile_bpf, run_btfgen

SRC = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct ev { int a; long b; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int);
         __type(value, struct ev); } vals SEC(".maps");
SEC("xdp") int prog(void *ctx) { return 2; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_bpf(SRC, tmp_path_factory.mktemp("files") / "files.bpf.o")


def one_line_error(r: object, path: object, what: str) -> None:
    assert r.returncode == 1, r.stderr  # type: ignore[attr-defined]
    assert r.stderr == f"btfgen: {path}: {what}\n", r.stderr  # type: ignore[attr-defined]


def test_symlink_written_through_and_mode_kept(obj: Path, tmp_path: Path) -> None:
    real = tmp_path / "real_skel.py"
    real.write_text("old\n")
    real.chmod(0o640)
    link = tmp_path / "link_skel.py"
    link.symlink_to(real)
    run_btfgen("gen", obj, "-o", link, check=True)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert "class Ev" in real.read_text()
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    # a dangling link creates its target
    dangling = tmp_path / "dangling.py"
    dangling.symlink_to(tmp_path / "new_skel.py")
    run_btfgen("gen", obj, "-o", dangling, check=True)
    assert dangling.is_symlink() and "class Ev" in (tmp_path / "new_skel.py").read_text()


def test_new_file_gets_umask_mode(obj: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.py"
    run_btfgen("gen", obj, "-o", out, check=True)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~mask


def test_device_node_written_in_place(obj: Path) -> None:
    before = os.stat("/dev/null")
    run_btfgen("gen", obj, "-o", "/dev/null", check=True)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    assert after.st_ino == before.st_ino


def test_fifo_written_in_place(obj: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    run_btfgen("gen", obj, "-o", fifo, check=True)
    reader.join(10)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert b"class Ev" in got[0]


def test_directory_output_refused(obj: Path, tmp_path: Path) -> None:
    r = run_btfgen("gen", obj, "-o", tmp_path)
    one_line_error(r, tmp_path, "is a directory: name the module file to write, e.g. "
                   f"{tmp_path / 'prog_skel.py'}")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["gen", "dump", "info"])
def test_unsizable_inputs_refused(command: str, tmp_path: Path) -> None:
    r = run_btfgen(command, "/dev/zero", cwd=tmp_path)
    one_line_error(r, "/dev/zero", "not a regular file (character device): cannot be sized;"
                   " copy it to a file first")
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    r = run_btfgen(command, fifo, cwd=tmp_path)  # would block forever if opened
    one_line_error(r, fifo, "not a regular file (FIFO): cannot be sized; copy it to a file"
                   " first")
    r = run_btfgen(command, tmp_path, cwd=tmp_path)
    one_line_error(r, tmp_path, "cannot read: Is a directory")


def test_input_size_bounded(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(bytes(100))
    with pytest.raises(ObjectError, match=r"too large \(100 bytes, at most 64\)"):
        read_input_bytes(str(big), limit=64)
    assert read_input_bytes(str(big), limit=100) == bytes(100)
    # procfs files are regular but say 0 bytes: read in chunks, still bounded
    assert b"Name:" in read_input_bytes("/proc/self/status")
    with pytest.raises(ObjectError, match=r"too large \(more than 16 bytes\)"):
        read_input_bytes("/proc/self/status", limit=16)
    # sysfs files are regular and sized
    assert read_input_bytes("/sys/kernel/btf/vmlinux")[:2] in (b"\x9f\xeb", b"\xeb\x9f")
