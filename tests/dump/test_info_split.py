"""``btfgen info SPLIT --base BASE`` for split BTF (kernel module BTF), and a clear
one-line message when ``--base`` is missing (info, dump and gen alike)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import run_btfgen


def write_pair(tmp_path: Path, order: str) -> tuple[Path, Path]:
    base = BtfBuilder()
    i = base.int_("int", 4, signed=True)
    base.struct("base_s", 8, [("a", i, 0), ("b", i, 32)])
    split = BtfBuilder(base=base)
    split.struct("mod_s", 4, [("x", i, 0)])
    split.typedef("mod_t", i)
    (tmp_path / "base").write_bytes(base.build(order))
    (tmp_path / "mod").write_bytes(split.build(order))
    return tmp_path / "base", tmp_path / "mod"


@pytest.mark.parametrize("order", ["little", "big"])
def test_info_split_with_base(tmp_path: Path, order: str) -> None:
    base, mod = write_pair(tmp_path, order)
    r = run_btfgen("info", mod, "--base", base, check=True)
    assert r.stdout == (f"file: {mod}\nraw BTF: 2 types ({order}-endian, ids 3..4 split on a"
                        " base of 2); no programs, maps or globals\n")


@pytest.mark.parametrize("command", ["info", "dump", "gen"])
def test_split_without_base_says_so(tmp_path: Path, command: str) -> None:
    _, mod = write_pair(tmp_path, "little")
    r = run_btfgen(command, mod, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == (f"btfgen: {mod}: split BTF (its type ids and strings continue a base"
                        " BTF's): pass --base BASE, e.g. --base /sys/kernel/btf/vmlinux\n")
    assert not list(tmp_path.glob("*.py"))


def test_split_with_empty_first_string_without_base(tmp_path: Path) -> None:
    """Split BTF whose strings happen to start with "" is told by its references."""
    base = BtfBuilder()
    i = base.int_("int", 4, signed=True)
    s = base.struct("base_s", 8, [("a", i, 0), ("b", i, 32)])
    split = BtfBuilder(base=base)
    split.ptr(s)
    (tmp_path / "base").write_bytes(base.build())
    (tmp_path / "mod").write_bytes(split.build(strings=b"\0"))
    r = run_btfgen("info", tmp_path / "mod")
    assert r.returncode == 1 and r.stderr.endswith(
        "refers to type id 2, out of range (max 1) (if this is split BTF, pass --base BASE)\n")
    r = run_btfgen("info", tmp_path / "mod", "--base", tmp_path / "base", check=True)
    assert "1 types" in r.stdout
