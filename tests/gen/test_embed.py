"""``btfgen gen`` embeds the object without its DWARF by default, compressed
(zlib + base64); ``--keep-debug`` keeps it; the stripped copy is what libbpf
loads (every live test of a ``clang -g`` object loads it)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from btfgen.elf.strip import is_debug_section, strip_debug
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import load

SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct ev { int a; long b; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int);
         __type(value, struct ev); } vals SEC(".maps");
SEC("xdp") int prog(void *ctx) { int k = 0; struct ev *v = bpf_map_lookup_elem(&vals, &k);
    return v ? v->a : 2; }
"""


def sections(data: bytes) -> dict[str, tuple[str, int, bytes]]:
    elf = ELFFile(io.BytesIO(data))
    return {s.name: (s["sh_type"], s.data_size, s.data() if s["sh_type"] != "SHT_NOBITS"
                     else b"") for s in elf.iter_sections()}


@pytest.mark.parametrize("clang", ["clang", "clang-19"])
@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_gen_embeds_without_dwarf(tmp_path: Path, clang: str, target: str) -> None:
    obj = compile_bpf(SRC, tmp_path / "emb.bpf.o", clang=clang, target=target)
    data = obj.read_bytes()
    run_btfgen("gen", obj, "-o", tmp_path / "a.py", check=True)
    run_btfgen("gen", obj, "-o", tmp_path / "b.py", "--keep-debug", check=True)
    stripped = load(tmp_path / "a.py").EmbSkel.OBJECT
    assert load(tmp_path / "b.py").EmbSkel.OBJECT == data
    assert stripped == strip_debug(data) and len(stripped) < len(data)
    before, after = sections(data), sections(stripped)
    assert list(before) == list(after)  # same sections, same order, same indices
    debug = [n for n in before if is_debug_section(n)]
    assert ".debug_info" in debug and ".rel.debug_info" in debug
    for name, (kind, size, body) in before.items():
        if name in debug:
            assert after[name][1] == 0
        else:
            assert after[name] == (kind, size, body), name
    assert "zlib.decompress(binascii.a2b_base64(" in (tmp_path / "a.py").read_text()
    assert strip_debug(stripped) == stripped


def test_check_knows_keep_debug(tmp_path: Path) -> None:
    obj = compile_bpf(SRC, tmp_path / "emb.bpf.o")
    run_btfgen("gen", obj, "-o", tmp_path / "a.py", "--keep-debug", check=True)
    assert run_btfgen("check", obj, "-o", tmp_path / "a.py", "--keep-debug").returncode == 0
    r = run_btfgen("check", obj, "-o", tmp_path / "a.py")
    assert r.returncode == 1


def test_not_elf_left_alone() -> None:
    assert strip_debug(b"\x7fELF\x01garbage") == b"\x7fELF\x01garbage"
    assert strip_debug(b"") == b""
