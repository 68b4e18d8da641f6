"""Generated modules pass ruff's default rules plus the UP, RUF, I and B families
(RUF022 sorted ``__all__``, RUF100 no unused ``noqa``, UP034 no extra
parentheses) -- not just the project's own selection -- and ``mypy --strict``,
vmlinux's ``struct sock`` and ``struct task_struct`` included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from btfgen.gen.module import dunder_all_key, generate_module
from btfgen.gen.options import GenOptions
from tests.gen.test_gen_records import ZOO
from tests.gen.test_names_hostile import hostile_btf
from tests.helpers.build import compile_bpf
from tests.helpers.lint import mypy_strict

RULES = "E4,E7,E9,F,UP,RUF,I,B"
LONG = "m" * 120
SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct odd {                       /* a 3-byte bitfield run with one member */
    unsigned char tag;
    unsigned int wide : 20;
} __attribute__((packed));
struct odd2 { unsigned char t; unsigned int a : 3, b : 17; } __attribute__((packed));
struct S10 { int x; }; struct S2 { int y; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int);
         __type(value, struct odd); } LONGNAME SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int);
         __type(value, struct odd2); } odd2s SEC(".maps");
struct S10 s10; struct S2 s2;
SEC("xdp") int prog(void *ctx) { return 2; }
""".replace("LONGNAME", LONG)


def ruff_all(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--select", RULES,
         "--target-version", "py310", *map(str, paths)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("lint")
    out = []
    for name, src, clang in (("zoo", ZOO, "clang-19"), ("odd", SRC, "clang"),
                             ("odd19", SRC, "clang-19")):
        obj = compile_bpf(src, d / f"{name}.bpf.o", clang=clang)
        out.append(d / f"{name}_skel.py")
        out[-1].write_text(generate_module(str(obj)).text)
    eb = compile_bpf(SRC, d / "oddeb.bpf.o", target="bpfeb")
    out.append(d / "oddeb_skel.py")
    out[-1].write_text(generate_module(str(eb)).text)
    blob, _ = hostile_btf(anon=True)
    (d / "hostile.btf").write_bytes(blob)
    out.append(d / "hostile.py")
    out[-1].write_text(generate_module(str(d / "hostile.btf"), GenOptions(types=("root_t",))).text)
    for ctype, name in (("struct sock", "sock"), ("struct task_struct", "task")):
        out.append(d / f"{name}.py")
        out[-1].write_text(
            generate_module("/sys/kernel/btf/vmlinux", GenOptions(types=(ctype,))).text)
    return out


def test_ruff_default_up_ruf_i_b(modules: list[Path]) -> None:
    r = ruff_all(modules)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict(modules: list[Path]) -> None:
    r = mypy_strict(modules)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_line_noqa_and_odd_bitfields_round_trip(modules: list[Path]) -> None:
    from tests.helpers.gen import load

    odd = modules[1].read_text()
    assert "  # noqa" not in odd and "# ruff: noqa: E501, RUF100" in odd  # 120-char map name
    for path in modules[1:4]:
        mod = load(path)
        Odd, Odd2 = mod.TYPES["struct odd"], mod.TYPES["struct odd2"]
        assert Odd.from_bytes(Odd(tag=1, wide=0xABCDE).to_bytes()).wide == 0xABCDE
        v = Odd2.from_bytes(Odd2(t=9, a=5, b=0x1ABCD).to_bytes())
        assert (v.t, v.a, v.b) == (9, 5, 0x1ABCD)
        assert mod.ffi.sizeof("struct odd") == 4


def test_dunder_all_order_is_ruffs(tmp_path: Path) -> None:
    """The sort key puts names where ruff's RUF022 fix puts them."""
    names = ["ffi", "TYPES", "S10", "S2", "Odd", "X", "_priv", "ProbeSkel", "A_B", "a2", "a10",
             "Dup2", "Dup10", "Dup", "T_", "Ab_1", "AB1c", "__Btfgen", "class_", "x_y"]
    f = tmp_path / "m.py"
    f.write_text("__all__ = [\n" + "".join(f'    "{n}",\n' for n in reversed(names)) + "]\n")
    subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                    "--select", "RUF022", "--fix", str(f)], capture_output=True, check=False)
    ruffs = [line.strip().strip('",') for line in f.read_text().splitlines()[1:-1]]
    assert sorted(names, key=dunder_all_key) == ruffs
