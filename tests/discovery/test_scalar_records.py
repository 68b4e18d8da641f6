"""Scalar perf/ring records: ``int *v = bpf_ringbuf_reserve(&rb, sizeof(int), 0)``
and ``__type(value, __u32)`` on a ring buffer are record types, and ``--event``
takes multi-word base types (``rb=unsigned int``)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from btfgen.btf_c import int_name_key
from btfgen.discovery.resolve import EventTypeError, resolve_event_types
from btfgen.elf.reader import read_input
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import generate
from tests.helpers.runtime_zoo import load_or_skip

SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
#ifndef LIVE  /* libbpf 1.1 refuses a ring buffer with a value type: cilium/ebpf style */
struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); __type(value, __u32);
} rb2 SEC(".maps");
#else
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb2 SEC(".maps");
#endif
struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __type(key, int); __type(value, __u32);
} perf SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb3 SEC(".maps");

#ifdef LIVE
int target_pid;  /* other processes' getppid() must not fill the rings */
#endif

SEC("tracepoint/syscalls/sys_enter_getppid")
int handle(void *ctx) {
#ifdef LIVE
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
        return 0;
#endif
    int *v = bpf_ringbuf_reserve(&rb, sizeof(int), 0);
    if (v) {
        *v = bpf_get_current_pid_tgid() >> 32;
        bpf_ringbuf_submit(v, 0);
    }
    __u32 x = bpf_get_current_pid_tgid() >> 32;
    bpf_ringbuf_output(&rb2, &x, sizeof(x), 0);
    long long y = 7;
    bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &y, sizeof(y));
    unsigned long long z = 9;
    bpf_ringbuf_output(&rb3, &z, sizeof(z), 0);
    return 0;
}
"""


def build(tmp_path: Path, clang: str, target: str, strip: bool = False,
          live: bool = False) -> Path:
    obj = compile_bpf(SRC, tmp_path / f"scal_{clang}_{target}.bpf.o", clang=clang, target=target,
                      cflags=["-DLIVE"] if live else [])
    if strip:
        subprocess.run(["llvm-strip", "-g", str(obj)], check=True)
    return obj


def records(obj: Path, events: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    from btfgen.dump.info import c_type_name

    et = resolve_event_types(read_input(str(obj)), events)
    return {name: (c_type_name(et.btf, rec.type_id) if rec.type_id else "", rec.source)
            for name, rec in et.maps.items()}


def test_int_name_key() -> None:
    assert int_name_key("unsigned long") == int_name_key("long unsigned int")
    assert int_name_key("unsigned") == int_name_key("unsigned int")
    assert int_name_key("signed int") == int_name_key("int")
    assert int_name_key("signed char") != int_name_key("char")
    assert int_name_key("long long") != int_name_key("long")
    assert int_name_key("struct x") is None


@pytest.mark.parametrize("clang", ["clang", "clang-19"])
@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_scalar_records_found(tmp_path: Path, clang: str, target: str) -> None:
    got = records(build(tmp_path, clang, target))
    assert got["rb"] == ("int", "dwarf")            # the reserved pointer's type
    assert got["rb2"] == ("__u32", "map BTF")       # __type(value, __u32) on a ring buffer
    assert got["perf"][0] == "long long"           # the stack local, not the map's fd type
    assert got["rb3"] == ("unsigned long long", "dwarf")
    stripped = records(build(tmp_path, clang, target, strip=True))
    assert stripped["rb2"] == ("__u32", "map BTF")
    assert stripped["perf"] == ("", "")             # a perf array's __u32 value is the fd


@pytest.mark.parametrize("spec, want", [
    ("unsigned int", "unsigned int"), ("unsigned", "unsigned int"), ("int", "int"),
    ("unsigned   int", "unsigned int"), ("signed", "int"),
    ("__u32", "__u32"),
])
def test_event_multi_word_base_type(tmp_path: Path, spec: str, want: str) -> None:
    obj = build(tmp_path, "clang", "bpfel", strip=True)
    assert records(obj, {"rb": spec})["rb"] == (want, "--event")
    r = run_btfgen("info", obj, "--event", f"rb={spec}", check=True)
    assert f"record: {want}, " in r.stdout


def test_event_unknown_base_type_is_one_line(tmp_path: Path) -> None:
    obj = build(tmp_path, "clang", "bpfel", strip=True)
    with pytest.raises(EventTypeError, match="no type 'unsigned __int128'"):
        records(obj, {"rb": "unsigned __int128"})


def test_generated_codecs_and_big_endian(tmp_path: Path) -> None:
    for target, order in (("bpfel", "<"), ("bpfeb", ">")):
        out = tmp_path / f"scal_{target}_skel.py"
        r = run_btfgen("gen", build(tmp_path, "clang", target), "-o", out, check=True)
        text = out.read_text()
        assert f'_rt.RingBuf(skel._map("rb"), _codec.IntCodec("{order}i"))' in text, r.stderr
        assert f'_rt.RingBuf(skel._map("rb2"), _codec.IntCodec("{order}I"))' in text
        assert f'_codec.IntCodec("{order}q")' in text


@pytest.mark.live
def test_scalar_ring_records_live(tmp_path: Path) -> None:
    obj = build(tmp_path, "clang", "bpfel", live=True)
    mod = generate(obj, tmp_path / "scal_skel.py", name="scal")
    skel = mod.ScalSkel.open()
    pid = os.getpid()
    skel.bss.target_pid = pid
    load_or_skip(skel.load)
    got: dict[str, list[Any]] = {"rb": [], "rb2": []}
    try:
        skel.attach()
        bufs = [skel.maps.rb.open_ring_buffer(lambda r: got["rb"].append(r)),
                skel.maps.rb2.open_ring_buffer(lambda r: got["rb2"].append(r))]
        for _ in range(8):
            os.getppid()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and \
                min(sum(x == pid for x in v) for v in got.values()) < 8:
            for b in bufs:
                b.poll(20)
        for b in bufs:
            b.close()
    finally:
        skel.destroy()
    for name, values in got.items():
        assert all(type(x) is int for x in values), name
        assert sum(x == pid for x in values) >= 8, name
