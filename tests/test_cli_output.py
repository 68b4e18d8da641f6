"""How the ``btfgen`` command writes: a raw dump is written as it is formatted,
in chunks, and comes out whole; a reader that stops early ends it quietly; the
script exits with the command's code without freeing what it built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from btfgen import cli
from btfgen.btf_parse import parse_btf
from btfgen.dump import raw as dump_raw
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import run_btfgen

VMLINUX = Path("/sys/kernel/btf/vmlinux")


def _many_types(count: int) -> bytes:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    for n in range(count):
        b.typedef(f"t{n}", i)
    return b.build()


def test_dump_in_chunks_is_the_whole_text(tmp_path: Path) -> None:
    """Several chunks, the last one partial, joined with nothing lost or doubled."""
    count = dump_raw.CHUNK_TYPES * 2 + 5
    path = tmp_path / "many.btf"
    path.write_bytes(_many_types(count))
    chunks = list(dump_raw.iter_raw(parse_btf(path.read_bytes())))
    assert len(chunks) == 3
    assert all(c.endswith("\n") for c in chunks)
    r = run_btfgen("dump", path, check=True)
    lines = r.stdout.splitlines()
    assert len(lines) == count + 1
    assert lines[0] == "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED"
    assert lines[-1] == f"[{count + 1}] TYPEDEF 't{count - 1}' type_id=1"
    assert r.stdout == "".join(chunks)


def test_dump_of_vmlinux_through_the_script_is_bpftool_text() -> None:
    if not VMLINUX.exists():
        pytest.skip("kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF off)")
    ours = subprocess.run([sys.executable, "-m", "btfgen", "dump", str(VMLINUX)],
                          capture_output=True, check=True)
    ref = subprocess.run(["bpftool", "btf", "dump", "file", str(VMLINUX), "format", "raw"],
                         capture_output=True, check=True)
    assert ours.stderr == b""
    assert ours.stdout == ref.stdout


def test_reader_that_stops_early_ends_the_dump_quietly(tmp_path: Path) -> None:
    path = tmp_path / "many.btf"
    path.write_bytes(_many_types(dump_raw.CHUNK_TYPES * 40))
    r = subprocess.run(f"{sys.executable} -m btfgen dump {path} | head -n 2",
                       shell=True, capture_output=True, text=True, check=True)
    assert r.stdout.splitlines() == [
        "[1] INT 'int' size=4 bits_offset=0 nr_bits=32 encoding=SIGNED",
        "[2] TYPEDEF 't0' type_id=1",
    ]
    assert r.stderr == ""
    piped = subprocess.run(
        f"{sys.executable} -m btfgen dump {path} | head -c 10 >/dev/null;"
        " echo ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
        capture_output=True, text=True, check=True)
    assert piped.stdout == "0\n" and piped.stderr == ""


def test_script_exits_with_the_command_code(tmp_path: Path) -> None:
    good = tmp_path / "good.btf"
    good.write_bytes(_many_types(1))
    assert run_btfgen("dump", good).returncode == 0
    bad = tmp_path / "bad.btf"
    bad.write_bytes(b"\x9f\xeb\x01")
    r = run_btfgen("dump", bad)
    assert r.returncode == 1
    assert r.stderr == f"btfgen: {bad}: truncated BTF: 3 bytes, header needs 24\n"
    assert run_btfgen("dump").returncode == 2  # usage error, from argparse


def test_error_while_streaming_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    path = tmp_path / "many.btf"
    path.write_bytes(_many_types(dump_raw.CHUNK_TYPES + 1))

    def failing(btf: object) -> object:
        yield "[1] first chunk\n"
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(dump_raw, "iter_raw", failing)
    monkeypatch.delenv("BTFGEN_TRACEBACK", raising=False)
    assert cli.main(["dump", str(path)]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"btfgen: {path}: internal error: ZeroDivisionError")
