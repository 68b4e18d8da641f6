"""``btfgen info``: the summary for people, and C spellings of types."""

from __future__ import annotations

from pathlib import Path

import pytest

from btfgen.btf_c import c_type_name
from btfgen.btf_parse import parse_btf
from btfgen.dump.info import format_info
from btfgen.elf.reader import read_input
from btfgen.errors import show
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import DATA, compile_bpf, run_btfgen


@pytest.fixture(scope="module")
def features_info(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = compile_bpf((DATA / "features.bpf.c").read_text(),
                       tmp_path_factory.mktemp("info") / "features.bpf.o")
    r = run_btfgen("info", path, check=True)
    assert r.stderr == ""
    return r.stdout


def test_header_and_programs(features_info: str) -> None:
    lines = features_info.splitlines()
    assert lines[1:4] == ["byte order: little-endian", "license: Dual BSD/GPL",
                          "kernel version: 5.10.3"]
    assert "programs (23):" in lines
    assert '  kp_a       kprobe (KPROBE)  SEC("kprobe/do_unlinkat")' in lines
    assert '  fs         fentry (TRACING, sleepable)  SEC("fentry.s/do_unlinkat")' in lines
    assert '  weird      unknown (UNSPEC)  SEC("weird_section")' in lines


def test_maps(features_info: str) -> None:
    text = features_info
    assert ("  events_hash: HASH\n"
            "      key: key_t (4 bytes)\n"
            "      value: struct event (32 bytes)\n"
            "      max_entries: 1024\n"
            "      flags: NO_PREALLOC\n"
            "      pinning: by_name\n") in text
    assert ("  outer: ARRAY_OF_MAPS\n"
            "      key: __u32 (4 bytes)\n"
            "      value: 4 bytes\n"
            "      max_entries: 2\n"
            "      inner map:\n"
            "        outer.inner: ARRAY\n"
            "            key: __u32 (4 bytes)\n"
            "            value: __u64 (8 bytes)\n"
            "            max_entries: 4\n") in text
    assert "  perf: PERF_EVENT_ARRAY\n      key: 4 bytes\n      value: 4 bytes\n" in text
    assert "  old_map: ARRAY (legacy)\n" in text
    assert "  ops: STRUCT_OPS (struct_ops)\n" in text
    assert "      numa_node: 1\n      map_extra: 0x3\n" in text


def test_globals(features_info: str) -> None:
    text = features_info
    assert "globals (15):" in text
    assert ("  .data (76 bytes, writable):\n"
            "         0       4  counter: int\n"
            "         8      32  big_data: __u64[4]\n"
            "        64       3  aligned_buf: char[3]\n"
            "        68       4  hidden_var: __u32 [static]\n"
            "        72       4  hidden_static: volatile int [static]\n") in text
    assert ("  .rodata (9 bytes, read-only):\n"
            "         0       4  cfg_pid: const volatile int\n"
            "         4       5  cfg_name: const volatile char[5]\n") in text
    assert "        13       8  CONFIG_DEFAULT_HOSTNAME: char[8]\n" in text
    assert "  .rodata.custom (8 bytes, read-only):\n" in text


def test_corpus_execsnoop(corpus_objects: list[Path]) -> None:
    path = next(p for p in corpus_objects if p.name == "execsnoop.bpf.o")
    text = format_info(read_input(str(path)))
    assert "  execs: HASH\n      key: pid_t (4 bytes)\n      value: struct event (7720 bytes)\n" \
        "      max_entries: 10240\n" in text
    assert "         8       4  max_args: const volatile int\n" in text
    assert "license: GPL\n" in text


def test_raw_btf(tmp_path: Path) -> None:
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    (tmp_path / "x.btf").write_bytes(b.build())
    text = format_info(read_input(str(tmp_path / "x.btf")))
    assert text.endswith("raw BTF: 1 types (little-endian); no programs, maps or globals\n")


def test_c_type_names() -> None:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    c = b.int_("char", 1, encoding=2)
    p = b.ptr(b.const(c))
    fp = b.func_proto(i, [("x", p), ("", 0)])
    cases = {
        p: "const char *",
        b.array(i, i, 4): "int[4]",
        b.ptr(b.array(i, i, 4)): "int (*)[4]",
        b.ptr(fp): "int (*)(const char *, ...)",
        b.const(p): "const char *const",
        b.ptr(b.struct("", 8, [])): "struct {...} *",
        b.ptr(b.fwd("u", union=True)): "union u *",
        b.ptr(b.ptr(i)): "int **",
        b.array(p, i, 2): "const char *[2]",
        b.ptr(0): "void *",
        b.typedef(b"bad\xffname\n", i): "bad\\xffname\\n",
    }
    btf = parse_btf(b.build())
    assert {t: c_type_name(btf, t) for t in cases} == cases


def test_show_escapes_untrusted_names() -> None:
    assert show("ok_name") == "ok_name"
    assert show("a\nb\x1b") == "a\\nb\\x1b"
    assert show(b"\xfe".decode("utf-8", "surrogateescape")) == "\\xfe"
