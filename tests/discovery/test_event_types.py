"""Record types of perf/ring buffer maps: every source alone and combined.

Objects are compiled here (``clang -g``; "stripped" ones through
``llvm-strip -g``, which drops DWARF and keeps .BTF); see event_progs.py.
"""

from __future__ import annotations

import io
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from btfgen.btf_c import c_type_name
from btfgen.btf_extend import BtfExtender
from btfgen.btf_model import Btf, Struct, Union
from btfgen.discovery.bytecode import (
    HELPER_PERF_EVENT_OUTPUT,
    HELPER_RINGBUF_RESERVE,
    MapValuePtr,
    StackPtr,
    analyze,
)
from btfgen.discovery.header import HeaderError, HeaderTypes
from btfgen.discovery.resolve import (
    EventTypeError,
    EventTypes,
    parse_event_args,
    resolve_event_types,
)
from btfgen.elf.model import BpfObject
from btfgen.elf.reader import read_input, read_object_bytes
from btfgen.errors import BtfgenError
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.event_progs import EVENT_H, EVENT_SIZE, build_variant


def record(obj_path: Path, events: dict[str, str] | None = None,
           header: str | None = None, map_name: str = "events") -> tuple[str, str, int, str]:
    """(C type, source, size, detail-or-message) of ``map_name``'s records."""
    et = resolve_event_types(read_input(str(obj_path)), events, header)
    r = et.maps[map_name]
    if not r.type_id:
        return "-", r.source, 0, r.message
    return c_type_name(et.btf, r.type_id), r.source, et.btf.size_of(r.type_id), r.detail


def assert_event_members(et: EventTypes, map_name: str = "events") -> None:
    """The resolved type is event.h's struct event, member for member."""
    btf = et.btf
    t = btf.skip_modifiers(et.record_type_id(map_name))
    assert isinstance(t, Struct)
    got = [(m.name, btf.member_bitfield(t, m).bit_offset, btf.member_bitfield(t, m).size)
           for m in t.members]
    assert got == [("pid", 0, 0), ("seq", 32, 0), ("magic", 64, 0), ("tag", 128, 0),
                   ("neg", 192, 0), ("flags", 208, 3), ("kind", 211, 5)]


# -- each source alone ----------------------------------------------------------------

@pytest.mark.parametrize("variant, source, detail", [
    ("mapbtf", "map BTF", "__type(value, ...) on the map"),
    ("annotate", "annotation", "BTFGEN_RECORD(events, ...)"),
    ("decltag", "annotation", 'btf_decl_tag("btfgen:record=struct event")'),
    ("heap", "bytecode", "value of map 'heap'"),
    ("varlen", "bytecode", "value of map 'heap'; bpf_perf_event_output in handle (16..32 bytes)"),
    ("pool", "bytecode", "size match; bpf_perf_event_output in handle (32 bytes)"),
    ("stack", "dwarf", "local 'e' of handle; bpf_perf_event_output in handle (32 bytes)"),
    ("call", "dwarf", "local 'e' of handle; bpf_perf_event_output in emit (32 bytes)"),
    ("ring", "dwarf", "pointer local in handle; bpf_ringbuf_reserve in handle (32 bytes)"),
    ("choose", "dwarf", "size match in the object's source; bpf_perf_event_output"),
])
def test_each_source_alone(event_variants: dict[str, Path], variant: str, source: str,
                           detail: str) -> None:
    name, src, size, got_detail = record(event_variants[variant])
    assert (name, src, size) == ("struct event", source, EVENT_SIZE)
    assert got_detail.startswith(detail)


@pytest.mark.parametrize("variant, function", [("stack", "handle"), ("call", "emit")])
def test_clang19_location_lists(variant: str, function: str, tmp_path: Path) -> None:
    """clang 19 places stack locals with location lists of DW_OP_breg10 pieces."""
    obj = build_variant(variant, tmp_path, clang="clang-19")
    name, source, size, detail = record(obj)
    assert (name, source, size) == ("struct event", "dwarf", EVENT_SIZE)
    assert detail.startswith(f"local 'e' of handle; bpf_perf_event_output in {function}")


def test_dwarf_types_land_in_a_split_btf(event_variants: dict[str, Path]) -> None:
    obj = read_input(str(event_variants["stack"]))
    assert not obj.btf.find("event")  # only DWARF knows it
    et = resolve_event_types(obj)
    assert et.btf.base is obj.btf and et.btf.start_id == obj.btf.type_count
    assert et.record_type_id("events") >= et.btf.start_id
    assert_event_members(et)


def test_header_alone_types_a_stripped_object(event_variants: dict[str, Path],
                                              tmp_path: Path) -> None:
    h = tmp_path / "event.h"
    h.write_text(EVENT_H)
    assert record(event_variants["stack_stripped"], header=str(h))[:3] == \
        ("struct event", "header", EVENT_SIZE)
    et = resolve_event_types(read_input(str(event_variants["ring_stripped"])), header=str(h))
    assert et.maps["events"].source == "header"
    assert_event_members(et)


def test_event_option_names_the_type(event_variants: dict[str, Path], tmp_path: Path) -> None:
    h = tmp_path / "types.h"
    h.write_text(EVENT_H + "struct other { __u64 a, b; };\n")
    # from the header, overriding the size match that would find struct event
    got = record(event_variants["stack_stripped"], {"events": "struct other"}, str(h))
    assert got[:3] == ("struct other", "--event", 16)
    assert "from " in got[3] and "types.h" in got[3]
    # from BTF, stronger than an annotation
    assert record(event_variants["annotate"], {"events": "__u32"})[:3] == ("__u32", "--event", 4)
    # from DWARF
    assert record(event_variants["stack"], {"events": "struct event"})[:2] == \
        ("struct event", "--event")


def test_bad_event_options(event_variants: dict[str, Path]) -> None:
    with pytest.raises(EventTypeError, match=r"no perf event array or ring buffer map named"
                       r" 'nope' \(these are: events\)"):
        record(event_variants["stack"], {"nope": "struct event"})
    with pytest.raises(EventTypeError, match=r"no type 'struct missing' in the object's BTF"
                       r" or DWARF \(a stripped object needs --header FILE.h\)"):
        record(event_variants["stack_stripped"], {"events": "struct missing"})
    with pytest.raises(EventTypeError, match="expected MAP=CTYPE"):
        parse_event_args(["events"])
    assert parse_event_args(["events=struct  event", "rb = u32"]) == \
        {"events": "struct event", "rb": "u32"}


def test_bad_header(event_variants: dict[str, Path], tmp_path: Path) -> None:
    h = tmp_path / "bad.h"
    h.write_text("struct event { int a; ;;; garbage here }\n")
    with pytest.raises(HeaderError, match="cannot parse") as e:
        record(event_variants["stack_stripped"], header=str(h))
    assert e.value.path == str(h)
    with pytest.raises(HeaderError, match="preprocessor failed"):
        record(event_variants["stack_stripped"], header=str(tmp_path / "missing.h"))
    r = run_btfgen("info", event_variants["stack_stripped"], "--header", h)
    assert r.returncode == 1 and r.stderr.startswith(f"btfgen: {h}: cannot parse")


# -- combinations and precedence --------------------------------------------------------

def test_stronger_source_wins(event_variants: dict[str, Path], tmp_path: Path) -> None:
    h = tmp_path / "other.h"
    h.write_text("struct decoy { char c[32]; };\n")
    # bytecode (map value) beats a header size match
    assert record(event_variants["heap"], header=str(h))[1] == "bytecode"
    # DWARF's local beats a header size match
    assert record(event_variants["stack"], header=str(h))[1] == "dwarf"
    # the annotation beats the bytecode/BTF size match it also has (decltag has a global)
    assert record(event_variants["decltag"])[1] == "annotation"


def test_ambiguity_is_reported_not_guessed(event_variants: dict[str, Path], tmp_path: Path) -> None:
    h = tmp_path / "two.h"
    h.write_text(EVENT_H + "struct other { __u64 a[4]; };\nstruct small { int x; };\n")
    et = resolve_event_types(read_input(str(event_variants["stack_stripped"])), header=str(h))
    r = et.maps["events"]
    assert r.type_id == 0 and r.ambiguous
    assert sorted(c.name for c in r.candidates) == ["struct event", "struct other"]
    assert et.messages() == [
        "map 'events': record type ambiguous, candidates fit equally:"
        f" struct event (32 bytes, header: size match in {h}),"
        f" struct other (32 bytes, header: size match in {h});"
        " records are bytes; pick one with --event events=CTYPE"]
    # --event settles it
    assert record(event_variants["stack_stripped"], {"events": "struct other"}, str(h))[:2] == \
        ("struct other", "--event")


def test_unresolved_message(event_variants: dict[str, Path]) -> None:
    obj = read_input(str(event_variants["ring_stripped"]))
    et = resolve_event_types(obj)
    assert et.record_type_id("events") == 0
    assert et.btf is obj.btf  # nothing was added
    assert et.messages() == [
        "map 'events' (RINGBUF): record type not found, records are bytes; type it with"
        " --event events=CTYPE (plus --header FILE.h for a stripped object) or"
        " BTFGEN_RECORD(events, CTYPE) from <btfgen.bpf.h>"]


# -- the bytecode analysis ---------------------------------------------------------------

def test_emit_sites(event_variants: dict[str, Path]) -> None:
    facts = analyze(read_input(str(event_variants["call"])))
    (site,) = facts.sites
    assert (site.map_name, site.helper, site.function, site.size.lo, site.size.hi) == \
        ("events", HELPER_PERF_EVENT_OUTPUT, "emit", 32, 32)
    # the pointer passed into emit() still points into handle()'s frame
    assert isinstance(site.data, StackPtr) and site.data.frame == "handle"
    assert facts.stack_depth["handle"] >= 32
    (heap,) = analyze(read_input(str(event_variants["varlen"]))).sites
    assert heap.data == MapValuePtr("heap", 0) and (heap.size.lo, heap.size.hi) == (16, 32)
    (ring,) = analyze(read_input(str(event_variants["ring"]))).sites
    assert (ring.helper, ring.size.lo, ring.data) == (HELPER_RINGBUF_RESERVE, 32, None)


ASM_PROG = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
} events SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
/* exact instructions: a spilled data pointer, a size bounded by two checks,
   a BPF-to-BPF call into another section passing a pointer to the caller's stack */
asm(
"	.text\n"
"	.globl emit\n"
"	.type emit,@function\n"
"emit:\n"
"	r4 = r2\n"
"	r2 = events ll\n"
"	r3 = 4294967295 ll\n"
"	call 25\n"
"	exit\n"
"	.section \"tp/syscalls/sys_enter_getppid\",\"ax\"\n"
"	.globl handle\n"
"	.type handle,@function\n"
"handle:\n"
"	r6 = r1\n"
"	r1 = r10\n"
"	r1 += -48\n"
"	*(u64 *)(r10 - 56) = r1\n"
"	r7 = *(u32 *)(r6 + 8)\n"
"	call 14\n"
"	r4 = *(u64 *)(r10 - 56)\n"
"	r1 = r6\n"
"	r2 = events ll\n"
"	r3 = 4294967295 ll\n"
"	r5 = r7\n"
"	if r5 > 48 goto out\n"
"	if r5 < 8 goto out\n"
"	call 25\n"
"	r1 = r6\n"
"	r2 = r10\n"
"	r2 += -48\n"
"	r5 = 40\n"
"	call emit\n"
"out:\n"
"	r0 = 0\n"
"	exit\n");
"""


def test_spills_bounds_and_calls(tmp_path: Path) -> None:
    facts = analyze(read_input(str(compile_bpf(ASM_PROG, tmp_path / "asm.bpf.o"))))
    got = [(s.function, s.section, s.insn, s.size.lo, s.size.hi, s.data) for s in facts.sites]
    assert got == [
        ("emit", ".text", 5, 40, 40, StackPtr("handle", -48)),
        ("handle", "tp/syscalls/sys_enter_getppid", 15, 8, 48, StackPtr("handle", -48)),
    ]
    assert facts.stack_depth == {"handle": 56}


@pytest.mark.slow
def test_damaged_code_and_dwarf_raise_only_btfgen_errors(event_variants: dict[str, Path]) -> None:
    """Random damage to program code, relocations and DWARF: a result or a
    BtfgenError, never another exception."""
    rnd = random.Random(99)
    for variant in ("call", "ring", "choose", "varlen"):
        data = event_variants[variant].read_bytes()
        elf = ELFFile(io.BytesIO(data))
        regions = [(int(sec["sh_offset"]), int(sec["sh_size"])) for sec in elf.iter_sections()
                   if sec["sh_size"] and (sec["sh_flags"] & 4 or sec.name.startswith(
                       (".rel", ".debug")))]
        for _ in range(40):
            b = bytearray(data)
            off, size = rnd.choice(regions)
            for _ in range(rnd.choice((1, 4, 16))):
                b[off + rnd.randrange(size)] = rnd.randrange(256)
            try:
                resolve_event_types(read_object_bytes("damaged.o", bytes(b)))
            except BtfgenError as e:
                assert str(e) and "\n" not in str(e)


# -- the annotation loads unchanged -------------------------------------------------------

@pytest.mark.live
def test_annotated_object_loads_in_libbpf(event_variants: dict[str, Path], tmp_path: Path) -> None:
    pin = Path("/sys/fs/bpf") / f"btfgen-annot-{tmp_path.name}"
    r = subprocess.run(["bpftool", "prog", "loadall", str(event_variants["annotate"]), str(pin)],
                       capture_output=True, text=True)
    try:
        if r.returncode != 0 and ("Operation not permitted" in r.stderr
                                  or "Function not implemented" in r.stderr):
            pytest.skip(f"the kernel refuses BPF here: {r.stderr.strip().splitlines()[-1]}")
        assert r.returncode == 0, r.stderr
        assert (pin / "handle").exists()
    finally:
        subprocess.run(["rm", "-rf", str(pin)], check=False)


# -- header layouts equal clang's ------------------------------------------------------------

ZOO_H = """\
#include <linux/types.h>
#define N 3
enum color { RED = 1, GREEN = 2, BLUE = -1 };
enum big { HUGE = 0x100000000ULL };
struct inner { __u8 a; __u64 b; };
struct packed_s { __u8 a; __u32 b; __u16 c; } __attribute__((packed));
struct __attribute__((packed)) packed2 { char x; long y; };
struct aligned_s { __u8 a; } __attribute__((aligned(16)));
struct malign { __u8 a; __u32 b __attribute__((aligned(8))); __u8 c; };
struct bits { __u32 a : 3, b : 7; __s8 c : 4; __u64 d : 40, : 0; __u16 e : 9; int f; };
union u { __u32 w; __u8 bytes[4]; struct { __u16 lo, hi; }; };
struct zw { char x; int : 0; };
struct __attribute__((packed)) pm { char x; int y __attribute__((aligned(4))); char z; };
struct pbits { char x; __u32 y : 30; __u8 z : 3; } __attribute__((packed));
typedef struct { int q; char r[N * 2 + 1]; } anon_t;
struct zoo {
\tstruct inner in;
\tstruct packed_s p;
\tunion u uu;
\tenum color col;
\tenum big bg;
\tanon_t an;
\t__u32 m[2][N];
\tstruct { __u8 x; __u16 y; } nested;
\tvoid *ptr;
\tstruct inner *iptr;
\t_Bool flag;
\tdouble dd;
\tchar flex[];
};
"""


def _layout(btf: Btf, tid: int) -> tuple[int, int, list[tuple[str, int, int, int]]]:
    t = btf.skip_modifiers(tid)
    assert isinstance(t, (Struct, Union))
    return btf.size_of(tid), btf.align_of(tid), [
        (m.name, btf.member_bitfield(t, m).bit_offset, btf.member_bitfield(t, m).size,
         btf.size_of(m.type_id)) for m in t.members]


def test_header_layout_equals_clang_bpf(tmp_path: Path) -> None:
    (tmp_path / "zoo.h").write_text(ZOO_H)
    specs = ["struct inner", "struct packed_s", "struct packed2", "struct aligned_s",
             "struct malign", "struct bits", "union u", "struct zw", "struct pm",
             "struct pbits", "anon_t", "struct zoo"]
    globs = " ".join(f"{s} g{i};" for i, s in enumerate(specs))
    ref = read_input(str(compile_bpf(f'#include "zoo.h"\n{globs}\n', tmp_path / "zoo.bpf.o",
                                     cflags=["-I", str(tmp_path)]))).btf
    base = read_input(str(compile_bpf("int x;\n", tmp_path / "empty.bpf.o"))).btf
    ext = BtfExtender(base)
    hdr = HeaderTypes(str(tmp_path / "zoo.h"), ext)
    assert hdr.own == specs
    ids = {s: hdr.lookup(s) for s in specs}
    mine = ext.finish()
    for s in specs:
        want = next(t.id for t in ref.types if ref.c_spelling(t.id) == s
                    and t.kind.name in ("STRUCT", "UNION", "TYPEDEF"))
        assert _layout(mine, ids[s]) == _layout(ref, want), s


# -- CLI ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_info_shows_record_and_source(event_variants: dict[str, Path], tmp_path: Path) -> None:
    out = run_btfgen("info", event_variants["heap"], check=True).stdout
    assert ("      record: struct event, 32 bytes [bytecode: value of map 'heap';"
            " bpf_perf_event_output in handle (32 bytes)]\n") in out
    out = run_btfgen("info", event_variants["stack_stripped"], check=True).stdout
    assert ("      record: unknown, records are bytes -- type it with --event events=CTYPE"
            " or BTFGEN_RECORD(events, CTYPE)\n") in out
    h = tmp_path / "event.h"
    h.write_text(EVENT_H)
    out = run_btfgen("info", event_variants["stack_stripped"], "--header", h,
                     "--event", "events=struct event", check=True).stdout
    assert "      record: struct event, 32 bytes [--event: --event events=struct event" in out
    r = run_btfgen("info", event_variants["stack"], "--event", "bogus=struct event")
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "no perf event array or ring buffer map named 'bogus'" in r.stderr


def test_gen_types_records_and_says_when_it_cannot(event_variants: dict[str, Path],
                                                  tmp_path: Path) -> None:
    h = tmp_path / "event.h"
    h.write_text(EVENT_H)
    out = tmp_path / "typed_skel.py"
    r = run_btfgen("gen", event_variants["ring_stripped"], "--header", h, "-o", out, check=True)
    assert r.stderr == ""
    text = out.read_text()
    assert 'class Event:\n    """C ``struct event`` (32 bytes)."""' in text
    out2 = tmp_path / "bytes_skel.py"
    r = run_btfgen("gen", event_variants["ring_stripped"], "-o", out2, check=True)
    assert r.stderr == (f"btfgen: {event_variants['ring_stripped']}: map 'events' (RINGBUF): record"
                        " type not found, records are bytes; type it with --event events=CTYPE"
                        " (plus --header FILE.h for a stripped object) or"
                        " BTFGEN_RECORD(events, CTYPE) from <btfgen.bpf.h>\n")
    assert "class Event" not in out2.read_text()


def test_gen_variable_length_records(event_variants: dict[str, Path], tmp_path: Path) -> None:
    """The "varlen" program sends 16..32 bytes of its 32-byte struct event: the
    skeleton's codec takes samples from 16 bytes, zero-padded; fixed-size
    records keep min_size == SIZE."""
    import importlib.util

    for name, least in (("varlen", 16), ("heap", 32)):
        out = tmp_path / f"{name}_skel.py"
        run_btfgen("gen", event_variants[name], "-o", out, check=True)
        text = out.read_text()
        assert (f"_codec.RecordCodec(Event, min_size={least})" in text) == (least < 32)
        spec = importlib.util.spec_from_file_location(f"evgen_{name}", out)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        (skel_name,) = [n for n in mod.__all__ if n.endswith("Skel")]
        skel = getattr(mod, skel_name).open()  # libbpf parses it; nothing is loaded
        try:
            codec = skel.maps.events.record_codec
        finally:
            skel.destroy()
        assert (codec.size, codec.min_size) == (EVENT_SIZE, least)
    whole = mod.Event(pid=1, seq=2, magic=3, tag=b"btfgen!", neg=-4, flags=5, kind=6).to_bytes()
    varlen = mod._codec.RecordCodec(mod.Event, min_size=16)
    buf = b"\xee" * 4 + whole + b"\xee" * 8  # the sample sits inside a larger buffer
    for size in (16, 20, 27, 32):
        got = varlen.decode_sample(buf, 4, size).to_bytes()
        assert got == whole[:size] + bytes(EVENT_SIZE - size)
    with pytest.raises(ValueError, match="a 15-byte sample is shorter than its record"):
        varlen.decode_sample(buf, 4, 15)


# -- the libbpf-tools corpus ----------------------------------------------------------------

def test_corpus_record_types(corpus_objects: list[Path]) -> None:
    """How many perf/ring maps resolve by themselves, and from which source."""
    by_source: Counter[str] = Counter()
    rows = []
    ranges = {}
    for path in corpus_objects:
        obj: BpfObject = read_input(str(path))
        et = resolve_event_types(obj)
        for name, r in et.maps.items():
            how = r.source or ("ambiguous" if r.ambiguous else "unresolved")
            by_source[how] += 1
            ranges[path.name] = r.size_range
            rows.append(f"{path.name:<24} {name:<16} {how:<11} "
                        f"{c_type_name(et.btf, r.type_id) if r.type_id else '-'}")
    print("\n".join(rows))
    print(dict(by_source))
    assert sum(by_source.values()) == 30
    resolved = sum(n for s, n in by_source.items() if s not in ("ambiguous", "unresolved"))
    assert resolved >= 8 and by_source["bytecode"] >= 8
    # the known ones
    assert "execsnoop.bpf.o          events           bytecode    struct event" in rows
    assert "javagc.bpf.o             perf_map         bytecode    struct data_t" in rows
    # variable-length records (a header plus the used part of args[]) and fixed ones
    assert ranges["execsnoop.bpf.o"] == (40, 7720)
    assert ranges["opensnoop.bpf.o"] == (312, 312)
