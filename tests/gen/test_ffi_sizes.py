"""Every entry of ``TYPES`` has ``ffi.sizeof`` equal to its BTF size: enums of 1, 2
and 8 bytes (packed enums, clang-14's 8-byte ENUM, ENUM64) and 0-byte structs
(vmlinux's ``struct kmap_ctrl``) included, with no cffi warning."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import pytest

from btfgen.btf_model import Btf, Kind
from btfgen.elf.reader import read_input
from btfgen.runtime.lazy_ffi import LazyFFI
from tests.helpers.build import compile_bpf
from tests.helpers.gen import generate

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
enum __attribute__((packed)) small { S_A, S_B, S_C = 200 };
enum __attribute__((packed)) mid { M_A = -1, M_B = 300 };
enum __attribute__((packed)) mid_u { MU_A = 1, MU_B = 60000 };
enum wide { W_A = 1, W_B = 0x100000000ULL };
enum wide_neg { WN_A = -1, WN_B = 0x100000000LL };
enum plain { P_A = 1 };
struct empty {};
union nothing {};
struct holder {
    enum small s; enum mid m; enum mid_u mu; enum wide w; enum wide_neg wn; enum plain p;
    struct empty e; union nothing n; int after;
};
typedef struct empty empty_t;
typedef enum small small_t;
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int);
         __type(value, struct holder); } vals SEC(".maps");
empty_t g_empty; small_t g_small;
SEC("xdp") int prog(void *ctx) { return 2; }
"""


def btf_size(btf: Btf, spelling: str) -> int:
    words = spelling.split()
    kinds = {"struct": (Kind.STRUCT,), "union": (Kind.UNION,),
             "enum": (Kind.ENUM, Kind.ENUM64)}.get(words[0], (Kind.TYPEDEF,))
    (t,) = [t for k in kinds for t in btf.find(words[-1], k)]
    return btf.size_of(t.id)


def check_every_entry(mod: ModuleType, btf: Btf) -> dict[str, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "guessing that it is equivalent to 'unsigned int'"
        got = {spelling: mod.ffi.sizeof(spelling) for spelling in mod.TYPES}
    want = {spelling: btf_size(btf, spelling) for spelling in mod.TYPES}
    assert got == want
    return got


@pytest.mark.parametrize("clang", ["clang", "clang-19"])
@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_enum_and_empty_sizes(tmp_path: Path, clang: str, target: str) -> None:
    obj = compile_bpf(SRC, tmp_path / "sizes.bpf.o", clang=clang, target=target)
    mod = generate(obj, tmp_path / "sizes_skel.py")
    sizes = check_every_entry(mod, read_input(str(obj)).btf)
    assert {k: sizes[k] for k in ("enum small", "enum mid", "enum mid_u", "enum wide",
                                  "enum wide_neg", "enum plain", "struct empty",
                                  "union nothing", "empty_t", "small_t")} == {
        "enum small": 1, "enum mid": 2, "enum mid_u": 2, "enum wide": 8, "enum wide_neg": 8,
        "enum plain": 4, "struct empty": 0, "union nothing": 0, "empty_t": 0, "small_t": 1}
    ffi = mod.ffi
    assert ffi.offsetof("struct holder", "after") == btf_offset(obj, "holder", "after")
    assert int(ffi.cast("enum small", 200)) == 200 and int(ffi.cast("enum mid", -1)) == -1
    assert ffi.string(ffi.cast("enum mid_u", 60000)) == "MU_B"
    Holder = mod.TYPES["struct holder"]
    h = Holder.from_bytes(bytes(Holder.SIZE))
    assert Holder.from_bytes(h.to_bytes()) == h


def btf_offset(obj: Path, struct: str, member: str) -> int:
    btf = read_input(str(obj)).btf
    (t,) = btf.find(struct, Kind.STRUCT)
    (m,) = [m for m in t.members if m.name == member]  # type: ignore[attr-defined]
    return int(m.bit_offset) // 8


def test_vmlinux_task_struct_sizes(tmp_path: Path) -> None:
    """``struct task_struct`` pulls in 0-byte structs (kmap_ctrl, netns_tracker) and
    enums of every size the running kernel has."""
    mod = generate("/sys/kernel/btf/vmlinux", tmp_path / "task.py",
                   types=["struct task_struct"])
    assert isinstance(mod.ffi, LazyFFI)
    sizes = check_every_entry(mod, read_input("/sys/kernel/btf/vmlinux").btf)
    assert 0 in sizes.values()
