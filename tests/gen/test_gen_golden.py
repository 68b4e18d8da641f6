"""Golden files: the generated text for fixed BTF inputs, byte for byte.

The inputs are built with :mod:`btf_builder` (so they do not depend on a
compiler version) and written next to the golden module as ``<name>.btf``;
``btfgen gen <name>.btf --type ...`` must reproduce ``<name>_skel.py``.
Set ``BTFGEN_UPDATE_GOLDEN=1`` to rewrite them after an intended change, then
review the diff.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import run_btfgen
from tests.helpers.gen import load
from tests.helpers.lint import mypy_strict

GOLDEN = Path(__file__).resolve().parent / "golden"


def records_btf() -> bytes:
    """An event with every member kind, a union, a packed struct, a flexible array."""
    b = BtfBuilder()
    u8 = b.int_("unsigned char", 1)
    char = b.int_("char", 1, signed=True)
    u16 = b.int_("unsigned short", 2)
    i32 = b.int_("int", 4, signed=True)
    u32 = b.int_("unsigned int", 4)
    u64 = b.int_("unsigned long long", 8)
    boolean = b.int_("_Bool", 1, encoding=4)  # BTF_INT_BOOL
    dbl = b.float_("double", 8)
    color = b.enum("color", 4, [("RED", 0), ("GREEN", 1), ("BLUE", 2)])
    comm = b.array(char, i32, 16)
    pair = b.array(u16, i32, 2)
    grid = b.array(pair, i32, 3)
    anon_u = b.union("", 4, [("lo", u32, 0), ("bytes", b.array(u8, i32, 4), 0)])
    pt = b.struct("", 8, [("x", i32, 0), ("y", i32, 32)])
    voidp = b.ptr(0)
    b.struct("event", 80, [
        ("pid", u32, 0), ("ts", u64, 64), ("comm", comm, 128), ("kind", color, 256),
        ("sb", i32, 288, 3), ("ub", u32, 291, 5), ("flag", boolean, 296, 1),
        ("", anon_u, 320), ("pt", pt, 352), ("grid", grid, 416), ("d", dbl, 512),
        ("ptr", voidp, 576),
    ], kflag=True)
    b.union("value", 8, [("u", u64, 0), ("i", i32, 0), ("s", b.array(char, i32, 8), 0)])
    b.struct("packed", 5, [("a", u8, 0), ("b", i32, 8)])
    b.struct("msg", 4, [("len", u32, 0), ("text", b.array(char, i32, 0), 32)])
    return b.build()


CASES: dict[str, tuple[Callable[[], bytes], list[str]]] = {
    "records": (records_btf, ["struct event", "union value", "struct packed", "struct msg"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str, tmp_path: Path) -> None:
    build, types = CASES[name]
    src = tmp_path / f"{name}.btf"
    src.write_bytes(build())
    out = tmp_path / f"{name}_skel.py"
    args = [a for t in types for a in ("--type", t)]
    r = run_btfgen("gen", src, "-o", out, *args)
    assert r.returncode == 0, r.stderr
    golden = GOLDEN / f"{name}_skel.py"
    if os.environ.get("BTFGEN_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        shutil.copy(out, golden)
        shutil.copy(src, GOLDEN / f"{name}.btf")
    assert (GOLDEN / f"{name}.btf").read_bytes() == src.read_bytes(), "input changed"
    assert out.read_text() == golden.read_text()


def test_golden_modules_work() -> None:
    """The golden texts themselves: importable, typed, and decoding as designed."""
    paths = [GOLDEN / f"{name}_skel.py" for name in sorted(CASES)]
    r = mypy_strict(paths)
    assert r.returncode == 0, r.stdout + r.stderr
    mod = load(GOLDEN / "records_skel.py")
    e = mod.Event(pid=7, comm=b"sh", kind=mod.Color.BLUE, sb=-3, ub=31, flag=True, lo=0x0A0B0C0D,
                  pt=mod.EventPt(1, -1), grid=[[1, 2], [3, 4], [5, 6]], d=0.25, ptr=0x10)
    raw = e.to_bytes()
    assert len(raw) == 80 and raw[4:8] == bytes(4)
    back = mod.Event.from_bytes(raw)
    # bytes_ (the other view of the anonymous union) was left at its default
    assert back == dataclasses.replace(e, bytes_=[0x0D, 0x0C, 0x0B, 0x0A])
    assert mod.Packed.from_bytes(b"\x01\xff\xff\xff\xff") == mod.Packed(1, -1)
    assert mod.Msg.from_bytes(b"\x02\0\0\0hi\0").text == b"hi"
