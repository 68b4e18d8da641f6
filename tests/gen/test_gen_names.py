"""Names from BTF are untrusted: hostile names still give a valid, clean module."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

import pytest

from btfgen.gen.naming import (
    UniqueNames,
    attr_name,
    class_name,
    doc_text,
    enum_member_name,
    py_str,
)
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import run_btfgen
from tests.helpers.gen import load
from tests.helpers.lint import mypy_strict, ruff

HOSTILE_MEMBERS = [
    "class", "__init__", "self", "SIZE", "from_bytes", "to_bytes", "_raw", "int", "type",
    'q"uote', "new\nline", "1abc", "__pad", "x", "x", "Root", "ffi", "TYPES", "struct",
    "back\\slash", b"\xff\xfe", "l", "é",
]


def _hostile_btf() -> bytes:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    u8 = b.int_("unsigned char", 1)
    weird = b.struct('evil"""\nname\\', 4, [("v", i, 0)])
    enum = b.enum("class", 4, [("name", 1), ("value", 2), ("_sunder_", 3), ("__private", 4),
                               ("None", 5), ("RED", 6), ("RED", 7), ("mro", 8), ("", 9)])
    dunder = b.struct("__init__", 1, [("__class__", u8, 0)])
    same = b.struct("Root", 4, [("a", i, 0)])  # collides with the class for "root"
    members = []
    for n, name in enumerate(HOSTILE_MEMBERS):
        members.append((name, i, 32 * n))
    size = 4 * len(HOSTILE_MEMBERS)
    members += [("w", weird, 8 * size), ("e", enum, 8 * (size + 4)),
                ("d", dunder, 8 * (size + 8)), ("s", same, 8 * (size + 12))]
    b.struct("root", size + 16, members)
    return b.build()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType]:
    d = tmp_path_factory.mktemp("names")
    src = d / "hostile.btf"
    src.write_bytes(_hostile_btf())
    out = d / "hostile_skel.py"
    r = run_btfgen("gen", src, "-o", out, "--type", "struct root")
    assert r.returncode == 0, r.stderr
    return out, load(out)


def test_hostile_module_imports_and_round_trips(hostile: tuple[Path, ModuleType]) -> None:
    _, mod = hostile
    root = mod.TYPES["struct root"]
    fields = [f.name for f in dataclasses.fields(root) if f.name != "_raw"]
    assert fields[:len(HOSTILE_MEMBERS)] == [
        "class_", "__init___", "self", "SIZE_", "from_bytes_", "to_bytes_", "_raw_", "int_",
        "type_", "q_uote", "new_line", "_1abc", "pad_", "x", "x_2", "Root_", "ffi_", "TYPES_",
        "struct_", "back_slash", "_x_", "l_", "__"]
    data = bytes(range(root.SIZE))
    r = root.from_bytes(data)
    padding = slice(101, 104)  # after the 1-byte struct member "d"
    assert r.to_bytes() == data[:padding.start] + bytes(3) + data[padding.stop:]
    assert root.from_bytes(r.to_bytes()) == r
    assert r.self == int.from_bytes(data[8:12], "little")


def test_hostile_type_names(hostile: tuple[Path, ModuleType]) -> None:
    _, mod = hostile
    assert mod.TYPES['struct evil"""\nname\\'].__name__ == "EvilName"
    assert mod.TYPES["struct root"].__name__ == "Root"
    assert mod.TYPES["struct Root"].__name__ == "Root_2"
    assert mod.TYPES["struct __init__"].__name__ == "Init"
    enum = mod.TYPES["enum class"]
    assert enum.__name__ == "Class"
    assert [m.name for m in enum] == ["name_", "value_", "sunder__", "private_", "None_",
                                      "RED", "RED_2", "mro_", "V_"]
    assert mod.Root.__doc__ == "C ``struct root`` (108 bytes)."
    assert mod.EvilName.__doc__ == 'C ``struct evil"""\nname\\`` (4 bytes).'


def test_hostile_module_is_lint_and_type_clean(hostile: tuple[Path, ModuleType]) -> None:
    path, _ = hostile
    r = mypy_strict([path])
    assert r.returncode == 0, r.stdout + r.stderr
    r = ruff([path])
    assert r.returncode == 0, r.stdout + r.stderr


def test_naming_rules() -> None:
    assert attr_name("for") == "for_" and attr_name("__x__") == "__x___"
    assert attr_name("__pad") == "pad_" and attr_name("a-b c") == "a_b_c"
    assert attr_name("__0") == "_0_" and attr_name("__1st") == "_1st_"
    assert attr_name("match") == "match_" and attr_name("pid") == "pid"
    assert class_name("data_t") == "DataT" and class_name("__sk_buff") == "SkBuff"
    assert class_name("9lives") == "T9lives" and class_name("") == "T"
    assert enum_member_name("__MAX") == "MAX_" and enum_member_name("name") == "name_"
    assert enum_member_name("SIZE") == "SIZE_"  # else the IntEnum passes for a record class
    u = UniqueNames({"a"})
    assert [u.add("a"), u.add("a"), u.add("b")] == ["a_2", "a_3", "b"]
    assert py_str('x"\n\udcff') == '"x\\"\\n\\udcff"'
    assert eval(py_str('x"\n\udcff')) == 'x"\n\udcff'  # noqa: S307
    # a docstring's value is the name, but a byte that is not UTF-8 reads as text:
    # a lone surrogate in __doc__ makes class creation fail
    doc = eval('"""' + doc_text('q"""\n\udcff\\') + '"""')  # noqa: S307
    assert doc == 'q"""\n\\xff\\' and doc.encode()


def test_cdef_names_are_unique(tmp_path: Path) -> None:
    """Two structs with one name (legal in BTF) are declared ``struct dup`` and
    ``struct dup___2`` (bpftool's convention), as TYPES spells them; members
    renamed in an inlined anonymous struct do not collide with the parent's."""
    from tests.helpers.gen import generate

    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    d1 = b.struct("dup", 4, [("a", i, 0)])
    d2 = b.struct("dup", 8, [("a", i, 0), ("b", i, 32)])
    anon = b.struct(0, 8, [("x y", i, 0), ("a", i, 32)])
    b.struct("top", 24, [("x-y", i, 0), ("p", d1, 32), ("q", d2, 64), (0, anon, 128)])
    (tmp_path / "dup.btf").write_bytes(b.build())
    mod = generate(tmp_path / "dup.btf", tmp_path / "dup.py", types=["struct top"])
    assert (mod.TYPES["struct dup"].SIZE, mod.TYPES["struct dup___2"].SIZE) == (4, 8)
    ffi = mod.ffi
    assert (ffi.sizeof("struct dup"), ffi.sizeof("struct dup___2")) == (4, 8)
    assert [ffi.offsetof("struct top", f) for f in ("_btfgen_m0", "_btfgen_m3_0", "a")] == \
        [0, 16, 20]
    top = mod.TYPES["struct top"].from_bytes(bytes(range(24)))
    assert top.a == int.from_bytes(bytes(range(20, 24)), "little")


def test_names_too_long_for_a_line(tmp_path: Path) -> None:
    """A 45-character class name wraps from_bytes' signature; longer ones cannot
    fit everywhere (a 300-character one nowhere): the module says so to ruff
    (E501 only) and stays lint and type clean; a module without such names
    says nothing."""
    from tests.helpers.gen import generate

    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    mid = b.struct("m" * 45, 4, [("v", i, 0)])
    huge = b.struct("h" * 300, 8, [("v", i, 0), ("w", i, 32)])
    b.struct("top", 12, [("a", mid, 0), ("b", huge, 32)])
    b.struct("s" * 30, 4, [("v", i, 0)])
    (tmp_path / "long.btf").write_bytes(b.build())
    out = tmp_path / "long_skel.py"
    mod = generate(tmp_path / "long.btf", out, types=["struct top"])
    text = out.read_text()
    assert "# ruff: noqa: E501, RUF100\n" in text
    assert mod.TYPES["struct top"].from_bytes(bytes(range(12))).b.w == 0x0B0A0908
    for r in (ruff([out]), mypy_strict([out])):
        assert r.returncode == 0, r.stdout + r.stderr
    assert "    def from_bytes(\n        cls, buf: Buffer, offset: int = 0\n    ) -> M" in text
    short = tmp_path / "short_skel.py"
    generate(tmp_path / "long.btf", short, types=[f"struct {'s' * 30}"])
    assert "noqa" not in short.read_text() and ruff([short]).returncode == 0


def _bad_member_btf() -> bytes:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    b.struct("bad\nname", 4, [("x", i, 0), ("y", i, 32)])  # y ends past the struct
    return b.build()


def _self_containing_btf() -> bytes:
    b = BtfBuilder()
    b.struct("loop", 4, [("me", 1, 0)])  # type 1 contains type 1 by value
    return b.build()


@pytest.mark.parametrize(("build", "spec", "message"), [
    (_bad_member_btf, "bad", "struct bad\\nname: member 'y' ends past the end"),
    (_self_containing_btf, "struct loop", ""),
])
def test_bad_btf_fails_in_one_line(build: object, spec: str, message: str,
                                   tmp_path: Path) -> None:
    src = tmp_path / "bad.btf"
    src.write_bytes(build())  # type: ignore[operator]
    out = tmp_path / "bad_skel.py"
    args = ["--type", "struct bad\nname"] if spec == "bad" else ["--type", spec]
    r = run_btfgen("gen", src, "-o", out, *args)
    assert r.returncode == 1
    assert r.stderr.startswith(f"btfgen: {src}: ") and r.stderr.count("\n") == 1, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
