"""Generated skeletons: lint-clean, stable, typed, and alive in the kernel."""

from __future__ import annotations

import importlib.util
import os
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import ReadOnlyError, possible_cpus
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.lint import mypy_strict, ruff
from tests.helpers.runtime_zoo import ZOO_SRC, load_or_skip

PID = os.getpid()

ODD_NAMES_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u32);
         __type(value, __u64); } class SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32);
         __type(value, __u32); } load SEC(".maps");
__u64 get = 5;
__u32 SECTION = 6;
__u64 odd_var SEC(".data.odd-name") = 7;
const volatile __u32 __dunder__ = 8;
extern unsigned int LINUX_KERNEL_VERSION __kconfig;
__u32 kver = 0;
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } raw_events SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int None(void *ctx)
{
	__u32 k = 0;
	__u64 v = get + SECTION + odd_var + __dunder__;
	bpf_map_update_elem(&class, &k, &v, BPF_ANY);
	kver = LINUX_KERNEL_VERSION;
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def import_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("skel")
    compile_bpf(ZOO_SRC, d / "zoo.bpf.o")
    compile_bpf(ODD_NAMES_SRC, d / "odd.bpf.o")
    for stem in ("zoo", "odd"):
        run_btfgen("gen", d / f"{stem}.bpf.o", "-o", d / f"{stem}_skel.py", check=True)
    return d


@pytest.fixture(scope="session")
def zoo_mod(gen_dir: Path) -> ModuleType:
    return import_module(gen_dir / "zoo_skel.py")


@pytest.mark.slow
def test_generated_module_passes_ruff_and_mypy_strict(gen_dir: Path) -> None:
    files = [str(gen_dir / "zoo_skel.py"), str(gen_dir / "odd_skel.py")]
    r = ruff(files)
    assert r.returncode == 0, r.stdout + r.stderr
    r = mypy_strict(files, follow_imports="normal")
    assert r.returncode == 0, r.stdout + r.stderr


def test_rerun_is_byte_identical(gen_dir: Path, tmp_path: Path) -> None:
    run_btfgen("gen", gen_dir / "zoo.bpf.o", "-o", tmp_path / "again.py", check=True)
    assert (tmp_path / "again.py").read_bytes() == (gen_dir / "zoo_skel.py").read_bytes()


def test_skeleton_shape(zoo_mod: ModuleType) -> None:
    skel_cls = zoo_mod.ZooSkel
    assert "ZooSkel" in zoo_mod.__all__
    assert skel_cls.OBJECT_NAME == "zoo"
    assert skel_cls.OBJECT[:4] == b"\x7fELF"
    with skel_cls.open() as skel:
        assert set(vars(skel.maps)) == {"events", "rb", "by_seq", "pcpu", "arr"}
        assert set(vars(skel.progs)) == {"handle"}
        assert skel.progs.handle.section == "tp/syscalls/sys_enter_getppid"
        assert skel.rodata.target_pid == 0 and skel.data.data_arr == [1, 2, 3, 4]
        assert skel.data_custom.custom_var == 99 and skel.bss.bss_count == 0
        assert skel.maps.by_seq.key_size == 4 and skel.maps.by_seq.value_size == 56
        assert not skel.loaded


def check_event(mod: ModuleType, rec: Any, seq: int) -> None:
    """Every field of ``rec`` equals what the zoo program wrote for ``seq``."""
    assert isinstance(rec, mod.Event)
    assert rec.seq == seq and rec.pid == PID
    assert rec.neg == (-(seq & 0xFFFF) + 0x8000) % 0x10000 - 0x8000
    assert rec.flag == seq & 1
    assert rec.comm == bytes([ord("a") + seq % 26]) + b"z"
    assert rec.arr == [seq * 10, seq * 10 + 1, seq * 10 + 2]
    assert isinstance(rec.pair, mod.EventPair)
    assert (rec.pair.lo, rec.pair.hi) == (seq & 0xFFFF, ~seq & 0xFFFF)
    assert rec.big == -seq * 1000000007


@pytest.mark.live
def test_skeleton_live(zoo_mod: ModuleType) -> None:
    skel = zoo_mod.ZooSkel.open()
    try:
        skel.rodata.target_pid = PID
        skel.rodata.rodata_mult = 2
        load_or_skip(skel.load)
        links = skel.attach()
        assert len(links) == 1 and skel.links == links and links[0].fd > 0
        assert skel.progs.handle.fd > 0
        with pytest.raises(ReadOnlyError):
            skel.rodata.target_pid = 1
        perf: list[Any] = []
        ring: list[Any] = []
        pb = skel.maps.events.open_perf_buffer(lambda cpu, r: perf.append(r))
        rb = skel.maps.rb.open_ring_buffer(ring.append)
        for _ in range(10):
            os.getppid()
        for _ in range(40):
            pb.poll(20)
            rb.poll(0)
            if len(perf) == 10 and len(ring) == 10:
                break
        assert sorted(r.seq for r in perf) == list(range(10))
        for r in perf + ring:
            check_event(zoo_mod, r, r.seq)
        assert skel.bss.bss_count == 10 and skel.data.data_value == 18
        by_seq = skel.maps.by_seq
        assert sorted(by_seq) == list(range(10))
        check_event(zoo_mod, by_seq[4], 4)
        assert sum(skel.maps.pcpu[0]) == 10 and len(skel.maps.pcpu[0]) == possible_cpus()
        e = by_seq[4]
        e.seq = 77
        by_seq[100] = e
        assert by_seq[100].seq == 77 and by_seq[100].pair == e.pair
        skel.detach()
        assert skel.links == [] and skel.progs.handle.links == []
        os.getppid()
        assert skel.bss.bss_count == 10  # detached: no more events
    finally:
        skel.destroy()
        skel.destroy()


@pytest.mark.live
def test_open_from_path_and_bytes_and_open_and_load(zoo_mod: ModuleType, gen_dir: Path) -> None:
    obj = gen_dir / "zoo.bpf.o"
    for src in (obj, str(obj), obj.read_bytes()):
        with zoo_mod.ZooSkel.open(src) as skel:
            assert skel.maps.by_seq.name == "by_seq"
    skel = load_or_skip(zoo_mod.ZooSkel.open_and_load)
    with skel:
        assert skel.loaded and skel.maps.arr.fd > 0
    assert skel.obj.closed


@pytest.mark.live
def test_untrusted_names_become_safe_attributes(gen_dir: Path) -> None:
    mod = import_module(gen_dir / "odd_skel.py")
    with mod.OddSkel.open() as skel:
        assert set(vars(skel.maps)) == {"class_", "load", "raw_events"}
        assert skel.maps.raw_events.record_codec is None  # no struct event: bytes
        assert set(vars(skel.progs)) == {"None_"}
        assert skel.progs.None_.name == "None"
        assert skel.data.get_ == 5 and skel.data.SECTION_ == 6
        assert skel.data_odd_name.odd_var == 7
        load_or_skip(skel.load)
        skel.attach()
        os.getppid()
        assert skel.maps.class_[0] == 5 + 6 + 7 + 8
        a, b, c = (int(x) for x in os.uname().release.split("-")[0].split(".")[:3])
        assert skel.kconfig.LINUX_KERNEL_VERSION == (a << 16) + (b << 8) + min(c, 255)
        assert skel.bss.kver == skel.kconfig.LINUX_KERNEL_VERSION


def test_unknown_record_type_gives_a_bytes_buffer_and_a_note(tmp_path: Path) -> None:
    src = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps")
    __attribute__((btf_decl_tag("btfgen:record=struct nope")));
char LICENSE[] SEC("license") = "GPL";
"""
    obj = compile_bpf(src, tmp_path / "tag.bpf.o")
    r = run_btfgen("gen", obj, "-o", tmp_path / "tag_skel.py")
    assert r.returncode == 0 and "map 'rb'" in r.stderr and "Traceback" not in r.stderr
    text = (tmp_path / "tag_skel.py").read_text()
    assert 'self.rb: _rt.RingBuf[bytes] = _rt.RingBuf(skel._map("rb"))' in text


TYPEZOO_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum color { RED = 1, GREEN = 2, BLUE = 40 };

struct rich {
	__u64 seq;
	enum color color;
	union { __u32 u; float f; } un;
	union { __u64 bits; double d; } dv;
	__u8 b1:3, b2:5;
	__s8 sb:4;
	__s16 sw:11;
	_Bool flag;
	char name[8];
	__u16 mat[2][3];
	struct { __s32 lo; __s32 hi; };
	__s8 tiny[3];
} __attribute__((packed));

const volatile __u32 targ = 0;
__u64 counter = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 65536);
} out SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct rich")));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct rich);
	__type(value, enum color);
} by_rec SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int emit(void *ctx)
{
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != targ)
		return 0;
	__u64 s = __sync_fetch_and_add(&counter, 1);
	struct rich *r = bpf_ringbuf_reserve(&out, sizeof(*r), 0);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->seq = s;
	r->color = s % 3 == 0 ? RED : s % 3 == 1 ? BLUE : (enum color)(7 + s);
	r->un.u = 0x3f800000 + (__u32)s;      /* 1.0f plus s ulps */
	r->dv.bits = 0x3ff8000000000000ULL + (s << 20);
	r->b1 = s;
	r->b2 = s * 3;
	r->sb = -(__s8)s;
	r->sw = -(__s16)(s * 100);
	r->flag = s & 1;
	r->name[0] = 'n';
	r->name[1] = '0' + s % 10;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 3; j++)
			r->mat[i][j] = s * 100 + i * 10 + j;
	r->lo = -(__s32)s;
	r->hi = (__s32)s << 20;
	r->tiny[0] = -1;
	r->tiny[1] = s;
	r->tiny[2] = -(__s8)s;
	enum color c = r->color;  /* one ring pointer per helper call */
	bpf_map_update_elem(&by_rec, r, &c, BPF_ANY);
	bpf_ringbuf_submit(r, 0);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def check_rich(mod: ModuleType, r: Any, s: int) -> None:
    """Every field of a struct rich equals what the typezoo program wrote for ``s``."""

    def sx(v: int, bits: int) -> int:
        v &= (1 << bits) - 1
        return v - (1 << bits) if v >> (bits - 1) else v

    assert isinstance(r, mod.Rich) and r.seq == s
    want_color = {0: mod.Color.RED, 1: mod.Color.BLUE}.get(s % 3, 7 + s)
    assert r.color == want_color and type(r.color) is type(want_color)
    assert r.un.u == 0x3F800000 + s
    assert r.un.f == struct.unpack("<f", struct.pack("<I", 0x3F800000 + s))[0]
    bits = 0x3FF8000000000000 + (s << 20)
    assert r.dv.bits == bits and r.dv.d == struct.unpack("<d", struct.pack("<Q", bits))[0]
    assert (r.b1, r.b2, r.sb, r.sw) == (s & 7, (s * 3) & 31, sx(-s, 4), sx(-s * 100, 11))
    assert r.flag is bool(s & 1)
    assert r.name == b"n" + str(s % 10).encode()
    assert r.mat == [[s * 100 + i * 10 + j for j in range(3)] for i in range(2)]
    assert (r.lo, r.hi) == (-s, sx(s << 20, 32))
    assert r.tiny == [-1, sx(s, 8), sx(-s, 8)]


@pytest.mark.live
def test_typezoo_every_field_live(tmp_path: Path) -> None:
    compile_bpf(TYPEZOO_SRC, tmp_path / "typezoo.bpf.o")
    run_btfgen("gen", tmp_path / "typezoo.bpf.o", "-o", tmp_path / "typezoo_skel.py", check=True)
    mod = import_module(tmp_path / "typezoo_skel.py")
    with mod.TypezooSkel.open() as skel:
        skel.rodata.targ = PID
        load_or_skip(skel.load)
        got: list[Any] = []
        rb = skel.maps.out.open_ring_buffer(got.append)
        skel.attach()
        n = 12
        for _ in range(n):
            os.getppid()
        for _ in range(50):
            if len(got) >= n:
                break
            rb.poll(20)
        assert [r.seq for r in got] == list(range(n))
        for r in got:
            check_rich(mod, r, r.seq)
            assert skel.maps.by_rec[r] == r.color  # a record as a map key
            assert r.to_bytes() == mod.Rich.from_bytes(r.to_bytes()).to_bytes()
        assert len(list(skel.maps.by_rec)) == n


@pytest.mark.slow
@pytest.mark.live
def test_corpus_skeletons_open_with_every_map_program_and_section(
        corpus_objects: list[Path], tmp_path: Path) -> None:
    """All 61 libbpf-tools objects: the skeleton imports and libbpf opens it with
    every map, program and global section the generator named."""
    from btfgen.gen.module import generate_module

    for obj in corpus_objects:
        path = tmp_path / f"c_{obj.name.split('.')[0].replace('-', '_')}_skel.py"
        path.write_text(generate_module(str(obj)).text)
        mod = import_module(path)
        skel_cls = next(v for k, v in vars(mod).items()
                        if k.endswith("Skel") and not k.startswith("_"))
        with skel_cls.open() as skel:
            assert set(vars(skel.progs)) and all(p.name for p in vars(skel.progs).values())
            for m in vars(skel.maps).values():
                if hasattr(m, "key_codec"):  # typed codecs agree with libbpf's sizes
                    assert (m.key_codec.size, m.value_codec.size) == (m.key_size, m.value_size)
            for attr, sec in vars(skel).items():
                if attr not in ("maps", "progs", "links", "_obj"):
                    assert sec.size == len(sec.read_bytes())


def test_record_types_come_from_the_one_resolver(gen_dir: Path, tmp_path: Path) -> None:
    """The skeleton types perf/ring maps with what ``resolve_event_types`` found:
    a decl tag wins; a map nothing types gets bytes (a ``struct event`` is never guessed)."""
    from btfgen.discovery.resolve import resolve_event_types
    from btfgen.elf.reader import read_input
    from btfgen.gen.model import TypeRefs
    from btfgen.gen.skeleton import build_skeleton_context

    src = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct event { __u32 a; };
struct other { __u64 b; };
struct other *keep_other;
struct event *keep_event;
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } tagged SEC(".maps")
    __attribute__((btf_decl_tag("btfgen:record=struct other")));
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } plain SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""
    obj = read_input(str(compile_bpf(src, tmp_path / "fb.bpf.o")))
    events = resolve_event_types(obj)
    assert obj.btf.type(events.record_type_id("tagged")).name == "other"
    assert events.record_type_id("plain") == 0
    ctx = build_skeleton_context(obj, TypeRefs(obj.btf, obj.byteorder, "FbSkel"), events)
    lines = {a.name: " ".join(a.lines) for a in ctx["skel"]["maps"]}
    assert "_rt.RingBuf[Other]" in lines["tagged"] and "_rt.RingBuf[bytes]" in lines["plain"]
    zoo = read_input(str(gen_dir / "zoo.bpf.o"))
    zoo_events = resolve_event_types(zoo)
    assert zoo.btf.type(zoo_events.record_type_id(zoo.maps[0].name)).name == "event"
