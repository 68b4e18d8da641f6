"""``--format raw`` is byte for byte what ``bpftool btf dump file F format raw`` prints:
on the libbpf-tools corpus, on objects compiled here with clang 14 and clang-19
for both byte orders (together every BTF kind), on vmlinux and on split BTF."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from btfgen.btf_model import Btf, Kind
from btfgen.btf_parse import parse_btf
from btfgen.dump.raw import format_raw
from btfgen.elf.reader import read_btf
from tests.helpers.btf_builder import GLOBAL, INT_CHAR, BtfBuilder
from tests.helpers.build import DATA, compile_bpf

VMLINUX = Path("/sys/kernel/btf/vmlinux")
COMPILERS = [(cc, target) for cc in ("clang", "clang-19") for target in ("bpf", "bpfeb")]


def bpftool_raw(path: Path, base: Path | None = None) -> bytes:
    cmd = ["bpftool", "btf", "dump", "file", str(path)]
    if base is not None:
        cmd += ["--base-btf", str(base)]
    r = subprocess.run([*cmd, "format", "raw"], capture_output=True, check=True)
    return r.stdout


def ours(btf: Btf) -> bytes:
    return format_raw(btf).encode("utf-8", "surrogateescape")


@pytest.mark.slow
def test_corpus_parity(corpus_objects: list[Path]) -> None:
    mismatched = [p.name for p in corpus_objects if ours(read_btf(str(p))) != bpftool_raw(p)]
    assert mismatched == []


@pytest.fixture(scope="session")
def kinds_objects(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """tests/data/kinds.bpf.c compiled by each (compiler, target)."""
    out = tmp_path_factory.mktemp("kinds")
    src = (DATA / "kinds.bpf.c").read_text()
    return {(cc, t): compile_bpf(src, out / f"kinds-{cc}-{t}.bpf.o", clang=cc, target=t)
            for cc, t in COMPILERS}


@pytest.mark.parametrize("compiler", COMPILERS, ids=lambda c: f"{c[0]}-{c[1]}")
def test_compiled_kinds_parity(kinds_objects: dict[tuple[str, str], Path],
                               compiler: tuple[str, str]) -> None:
    path = kinds_objects[compiler]
    btf = read_btf(str(path))
    assert btf.byteorder == ("big" if compiler[1] == "bpfeb" else "little")
    assert ours(btf) == bpftool_raw(path)


def test_compiled_objects_cover_every_kind(kinds_objects: dict[tuple[str, str], Path]) -> None:
    kinds = {cc: {t.kind for t in read_btf(str(p))} for (cc, _), p in kinds_objects.items()}
    every = set(Kind) - {Kind.VOID}
    assert kinds["clang-19"] == every
    assert kinds["clang"] == every - {Kind.ENUM64}


@pytest.fixture(scope="session")
def vmlinux() -> Btf:
    if not VMLINUX.exists():
        pytest.skip("kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF off)")
    return parse_btf(VMLINUX.read_bytes())


@pytest.mark.slow
def test_vmlinux_parity(vmlinux: Btf) -> None:
    assert ours(vmlinux) == bpftool_raw(VMLINUX)


def small_base() -> BtfBuilder:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    b.int_("char", 1, encoding=INT_CHAR)
    b.struct("base_s", 8, [("a", i, 0), ("b", i, 32)])
    b.fwd("later", union=True)
    return b


def module_types(split: BtfBuilder, int_id: int, struct_id: int) -> None:
    """Types a module might add on top of its base, with awkward names."""
    p = split.ptr(struct_id)
    split.struct("mod_s", 16, [("p", p, 0), ("x", int_id, 64, 3),
                               (b"caf\xc3\xa9\xff\xfe", int_id, 67, 5)], kflag=True)
    legacy_bits = split.int_("int", 4, signed=True, bits_offset=2, nr_bits=5)
    split.struct("legacy", 4, [("bf", legacy_bits, 0), ("", int_id, 0)])
    split.typedef(b"name with\ttab", struct_id)
    split.func("mod_fn", split.func_proto(int_id, [("x", int_id), ("", 0)]), GLOBAL)
    split.enum64("e64", 8, [("A", -1), ("B", 1 << 63)], signed=True)
    split.enum64("u64", 8, [("A", -1), ("B", 1 << 63)])
    split.enum("e", 4, [("N", -1)], signed=True)
    split.enum("", 1, [("", 3)])
    v = split.var("v", int_id, 0)
    odd = split.var("odd", int_id, 5)  # a linkage bpftool calls "(unknown)"
    split.datasec(".data", 8, [(v, 0, 4), (odd, 4, 4)])
    split.decl_tag("tag", v)
    # Offset 0 prints as (anon), an offset at some other empty string as ''.
    empty = split.string("x") + 1
    split.raw_type(empty, 7, 0, False, 0)
    split.struct("holes", 4, [(empty, int_id, 0)])


@pytest.mark.parametrize("order", ["little", "big"])
def test_split_parity_small_base(tmp_path: Path, order: str) -> None:
    base = small_base()
    split = BtfBuilder(base=base)
    module_types(split, 1, 3)
    (tmp_path / "base").write_bytes(base.build(order))
    (tmp_path / "mod").write_bytes(split.build(order))
    btf = read_btf(str(tmp_path / "mod"), str(tmp_path / "base"))
    assert btf.start_id == 5
    assert ours(btf) == bpftool_raw(tmp_path / "mod", tmp_path / "base")


def test_split_parity_on_vmlinux(vmlinux: Btf, tmp_path: Path) -> None:
    split = BtfBuilder(base=(vmlinux.type_count, len(vmlinux.strings)))
    int_id = vmlinux.find("int", Kind.INT)[0].id
    task = vmlinux.find("task_struct", Kind.STRUCT)[0].id
    module_types(split, int_id, task)
    (tmp_path / "mod").write_bytes(split.build())
    btf = parse_btf((tmp_path / "mod").read_bytes(), base=vmlinux)
    assert ours(btf) == bpftool_raw(tmp_path / "mod", VMLINUX)


def test_cli_writes_exact_bytes(tmp_path: Path) -> None:
    base = small_base()
    split = BtfBuilder(base=base)
    module_types(split, 1, 3)
    (tmp_path / "base").write_bytes(base.build("big"))
    (tmp_path / "mod").write_bytes(split.build("big"))
    r = subprocess.run([sys.executable, "-m", "btfgen", "dump", str(tmp_path / "mod"),
                        "--base", str(tmp_path / "base"), "--format", "raw"],
                       capture_output=True)
    assert (r.returncode, r.stderr) == (0, b"")
    expected = bpftool_raw(tmp_path / "mod", tmp_path / "base")
    assert b"caf\xc3\xa9\xff\xfe" in expected
    assert r.stdout == expected
