"""``btfgen dump --format c``: the header compiles, and C lays it out as BTF says.

Every check compiles the dumped header twice: for ``-target bpf`` (warnings
are errors) and, with a generated probe, for the host.  The probe prints
``sizeof`` of each record, ``offsetof`` of each member (nested ones too) and,
for bitfields, the first bit and width that writing all-ones into the field
sets in a zeroed record; all must equal the model's values.  x86-64 and BPF
are both LP64 little-endian, so the host layout is the BPF layout.
"""

from __future__ import annotations

import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from btfgen.btf_model import Btf, Composite, Kind, Struct, Union
from btfgen.btf_parse import parse_btf
from btfgen.dump.c import CWriter, format_c, sanitize
from btfgen.elf.reader import read_btf
from btfgen.errors import BtfError
from tests.helpers.btf_builder import INT_SIGNED, BtfBuilder
from tests.helpers.build import ROOT, compile_bpf, run_btfgen

VMLINUX = Path("/sys/kernel/btf/vmlinux")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# -- the probe --------------------------------------------------------------

PROBE_PRELUDE = """\
#define P(...) __builtin_printf(__VA_ARGS__)
static void bits(const char *key, const unsigned char *p, unsigned long n)
{
	long first = -1, last = -1;
	for (unsigned long i = 0; i < n * 8; i++)
		if ((p[i / 8] >> (i % 8)) & 1) {
			if (first < 0)
				first = i;
			last = i;
		}
	P("B %s %ld %ld\\n", key, first, last - first + 1);
}
#define BF(T, key, path) do { T v; __builtin_memset(&v, 0, sizeof(v)); v.path = -1; \\
	bits(key, (const unsigned char *)&v, sizeof(v)); } while (0)
"""

Expected = dict[str, tuple[int, ...]]


def _leaves(btf: Btf, rec: Composite, base: int, prefix: str,
            depth: int) -> Iterator[tuple[str, int, int]]:
    """(C member path, absolute bit offset, bitfield width) of members, nested
    records included (anonymous ones flattened as C does)."""
    for m in rec.members:
        bf = btf.member_bitfield(rec, m)
        mt = btf.type(m.type_id)
        if not m.name and isinstance(mt, (Struct, Union)) and not mt.name:
            yield from _leaves(btf, mt, base + bf.bit_offset, prefix, depth)
            continue
        if not _IDENT.match(m.name) or sanitize(m.name) != m.name:
            continue
        path = prefix + m.name
        yield path, base + bf.bit_offset, bf.size
        inner = btf.skip_modifiers(m.type_id)
        if not bf.size and isinstance(inner, (Struct, Union)) and depth < 2:
            yield from _leaves(btf, inner, base + bf.bit_offset, path + ".", depth + 1)


def probe(btf: Btf, writer: CWriter, ids: list[int], fn: str) -> tuple[str, Expected]:
    """C function ``fn`` printing the layout of types ``ids`` (records or
    typedefs of records), and the values the model expects it to print."""
    lines = [f"void {fn}(void)", "{"]
    expected: Expected = {}
    for tid in ids:
        rec = btf.skip_modifiers(tid)
        assert isinstance(rec, (Struct, Union))
        ctype = writer.spelling(tid)
        key = f"{fn}:{ctype.replace(' ', '_')}"
        lines.append(f'\tP("S {key} %lu\\n", (unsigned long)sizeof({ctype}));')
        expected[f"S {key}"] = (rec.size,)
        for path, bit, width in _leaves(btf, rec, 0, "", 0):
            if width:
                lines.append(f'\tBF({ctype}, "{key}.{path}", {path});')
                expected[f"B {key}.{path}"] = (bit, width)
            else:
                lines.append(f'\tP("O {key}.{path} %lu\\n", '
                             f"(unsigned long)__builtin_offsetof({ctype}, {path}));")
                expected[f"O {key}.{path}"] = (bit // 8,)
    lines.append("}")
    return "\n".join(lines) + "\n", expected


def record_ids(btf: Btf) -> list[int]:
    """Named structs/unions and typedefs of anonymous ones (what C can name)."""
    ids = []
    for t in btf.all_types():
        if t.kind in (Kind.STRUCT, Kind.UNION) and t.name:
            ids.append(t.id)
        elif t.kind == Kind.TYPEDEF and t.name != "__builtin_va_list":
            target = btf.skip_modifiers(t.id)
            if target.kind in (Kind.STRUCT, Kind.UNION) and not target.name:
                ids.append(t.id)
    return ids


def check_layouts(tmp: Path, units: list[tuple[Btf, list[int] | None]]) -> int:
    """Dump each BTF, compile all headers for BPF, build one host probe for
    all of them, run it and compare with the model.  Returns checks made."""
    tmp.mkdir(parents=True, exist_ok=True)
    headers, sources, expected = [], [], {}
    calls = []
    for n, (btf, ids) in enumerate(units):
        writer = CWriter(btf)
        header = tmp / f"dump{n}.h"
        header.write_text(writer.dump(), errors="surrogateescape")
        headers.append(header)
        fn = f"probe{n}"
        body, exp = probe(btf, writer, record_ids(btf) if ids is None else ids, fn)
        src = tmp / f"{fn}.c"
        src.write_text(f'#include "{header.name}"\n{PROBE_PRELUDE}{body}')
        sources.append(src)
        expected.update(exp)
        calls.append(fn)
    bpf = subprocess.run(["clang", "-target", "bpf", "-fsyntax-only", "-Wall", "-Werror",
                          # (a header without records leaves the pragma unused, as bpftool's)
                          "-Wno-pragma-clang-attribute",
                          "-x", "c", *map(str, headers)], capture_output=True, text=True)
    assert bpf.returncode == 0, bpf.stderr[:3000]
    main = tmp / "main.c"
    main.write_text("".join(f"void {f}(void);\n" for f in calls)
                    + "int main(void)\n{\n" + "".join(f"\t{f}();\n" for f in calls)
                    + "\treturn 0;\n}\n")
    exe = tmp / "probe"
    host = subprocess.run(["clang", "-O0", "-w", "-DBPF_NO_PRESERVE_ACCESS_INDEX", "-o", str(exe),
                           str(main), *map(str, sources)], capture_output=True, text=True)
    assert host.returncode == 0, host.stderr[:3000]
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    got = {}
    for line in out.splitlines():
        tag, key, *vals = line.split()
        got[f"{tag} {key}"] = tuple(map(int, vals))
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, f"{len(wrong)} layout mismatches (got, want): {list(wrong.items())[:20]}"
    return len(expected)


# -- C sources covering the tricky cases --------------------------------------

CASES = r"""
typedef unsigned int u32;
typedef unsigned long long u64;

enum color { RED, GREEN = 5, BLUE = -1 };
enum __attribute__((packed)) small_enum { SE_A = 1, SE_B = 200 };
enum __attribute__((packed)) neg_small { NS_A = -1, NS_B = 100 };
enum wide_u32 { WU_MAX = 0xffffffffu };
#if __clang_major__ >= 15
enum big64 { B64_A = 0xffffffff00ULL, B64_B = 1 };
enum sbig64 { SB64_A = -0x1000000000LL, SB64_B = 7 };
enum umax64 { UM64 = 0xffffffffffffffffULL };
enum smin64 { SM64 = -0x7fffffffffffffffLL - 1, SM64_B = 1 };
#define E64 enum big64 e64; enum sbig64 se64; enum umax64 um64; enum smin64 sm64;
#else
#define E64
#endif

struct packed_s { char a; int b; short c; } __attribute__((packed));
struct packed_tail { int a; char b; } __attribute__((packed));
struct packed_aligned { char a; int b; } __attribute__((packed, aligned(2)));
struct packed_nested { char a; struct packed_s p; long l; } __attribute__((packed));
struct aligned_member { char a; int b __attribute__((aligned(16))); char c; };
struct aligned_struct { int a; } __attribute__((aligned(32)));
struct holds_aligned { char c; struct aligned_struct s; char d; struct aligned_struct arr[2]; };
union aligned_union { int a; char b[5]; } __attribute__((aligned(16)));
union big_aligned_union { int a; } __attribute__((aligned(64)));
union packed_union { char c[5]; int i; } __attribute__((packed));
struct in_packed_union { char a; union packed_union u; };
struct __attribute__((aligned(8))) cacheline { char c; };

struct bits {
	unsigned int a : 3;
	int b : 5;
	unsigned long long c : 40;
	char tail;
	int : 0;
	signed char sc : 3;
	unsigned int span1 : 30;
	unsigned int span2 : 4;
	long long big : 63;
	_Bool flag : 1;
	enum color col : 4;
	int : 7;
	int after : 3;
	u32 td : 5;
	unsigned short : 0;
	unsigned char last : 1;
};
struct packed_bits { char a; unsigned int b : 30; unsigned int c : 6; } __attribute__((packed));
struct bits_then_aligned { unsigned a : 3; long l __attribute__((aligned(32))); unsigned b : 2; };
struct only_bits { unsigned long long x : 1; };
struct char_bits { char a : 3; char b : 6; };

struct nested {
	int x;
	union { int i; float f; struct { short lo, hi; }; };
	struct { char c; long l; } named_anon;
	struct { int deep; union { char dc; long dl; }; };
	struct { unsigned nibble : 4, other : 4; } nb;
};
struct arrays { int m[2][3][4]; struct nested n[2]; char z[0]; };
struct flex { int n; long data[]; };
struct empty { };
struct holds_empty { char a; struct empty e; char b; };
struct wide { char c; __int128 i; char d; unsigned __int128 u; float f; double g; _Bool b; };

typedef struct { int a; char b; } anon_td;
typedef union { int a; long b; } anon_union_td;
typedef enum { TA, TB = 3 } anon_enum_td;
typedef anon_td anon_td2;
typedef int (*fn_ptr)(int, const char *, ...);
typedef void fn_type(struct nested *);
struct other;
struct self_ref { struct self_ref *next; struct other *o; fn_type *cb; };
struct other { struct self_ref s; struct other *self; };
typedef struct list list_t;
struct list { list_t *next, *prev; struct list *(*find)(list_t *, int); };
struct callbacks {
	fn_ptr f;
	fn_type *g;
	int (*arr[4])(void);
	void *(*ret_fp)(int (*)(long));
	int (*(*pfa)[3])(int);
	char (*pa)[10];
	const int *const cp;
	const char *const names[3];
	volatile long vl;
	int *restrict rp;
	int __attribute__((btf_type_tag("user"))) *up;
	const volatile struct nested *cvn;
	anon_enum_td e;
	enum { INLINE_A, INLINE_B } inl;
	union { enum { DEEP_A = 9 } de; int di; };
};
struct collide { u32 u32; int color; struct other other; };
struct enums { enum color c; enum small_enum s; enum neg_small ns; enum wide_u32 w; E64 };

enum { LONE_A = 7, LONE_B } lone_var __attribute__((section(".data.all"), used));
struct all {
	struct packed_s a1; struct packed_tail a2; struct packed_aligned a3;
	struct packed_nested a4; struct aligned_member a5; struct holds_aligned a6;
	union aligned_union a7; union big_aligned_union a8; struct in_packed_union a9;
	struct cacheline a10; struct bits a11; struct packed_bits a12;
	struct bits_then_aligned a13; struct only_bits a14; struct char_bits a15;
	struct arrays a16; struct holds_empty a17; struct wide a18; anon_td a19;
	anon_union_td a20; anon_td2 a21; struct self_ref a22; struct other a23;
	struct list a24; struct callbacks a25; struct collide a26; struct enums a27;
	struct flex a28;
};
struct all g_all __attribute__((section(".data.all"), used));
int func(struct all *p, list_t *l) { return p->a1.b + (l != 0); }
"""


@pytest.fixture(scope="module")
def case_objects(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("cases")
    return [compile_bpf(CASES, d / "cases14.bpf.o", clang="clang"),
            compile_bpf(CASES, d / "cases19.bpf.o", clang="clang-19")]


def test_big_endian_object_dumps_the_same(case_objects: list[Path]) -> None:
    """BTF bit offsets are allocation order, not memory order: bpfeb's dump is bpf's."""
    be = compile_bpf(CASES, case_objects[1].with_name("cases19eb.bpf.o"), clang="clang-19",
                     target="bpfeb")
    assert read_btf(str(be)).byteorder == "big"
    assert format_c(read_btf(str(be))) == format_c(read_btf(str(case_objects[1])))


def test_cases_layout(case_objects: list[Path], tmp_path: Path) -> None:
    btfs = [read_btf(str(o)) for o in case_objects]
    assert btfs[1].find("big64", Kind.ENUM64)
    n = check_layouts(tmp_path, [(b, None) for b in btfs])
    assert n > 300


def test_cases_text(case_objects: list[Path]) -> None:
    text = format_c(read_btf(str(case_objects[1])))
    assert text.startswith("#ifndef __VMLINUX_H__\n")
    assert "#pragma clang attribute push (__attribute__((preserve_access_index))" in text
    assert text.endswith("#endif /* __VMLINUX_H__ */\n")
    # packed only where needed; padding for aligned(N); anonymous types inline
    assert re.search(r"struct packed_s \{\n\tchar a;\n\tint b;\n\tshort c;\n\} "
                     r"__attribute__\(\(packed\)\);", text)
    assert "struct aligned_member {\n\tchar a;\n\tlong: 56;\n\tlong: 64;\n\tint b;\n" in text
    assert "} __attribute__((packed))" not in text.split("struct aligned_member")[1][:80]
    assert "typedef struct {\n\tint a;\n\tchar b;\n} anon_td;" in text
    assert "typedef anon_td anon_td2;" in text
    assert "\tint (*(*pfa)[3])(int);" in text
    assert "\tvoid *(*ret_fp)(int (*)(long));" in text
    assert "typedef int (*fn_ptr)(int, const char *, ...);" in text
    assert "typedef void fn_type(struct nested *);" in text
    assert "\tconst int *const cp;" in text
    assert "\tint *restrict rp;" in text
    assert '\tint __attribute__((btf_type_tag("user"))) *up;' in text
    assert "enum {\n\tLONE_A = 7,\n\tLONE_B = 8,\n};" in text
    assert "enum small_enum {\n\tSE_A = 1,\n\tSE_B = 200,\n} __attribute__((mode(QI)));" in text
    assert "\tUM64 = 18446744073709551615ULL,\n};" in text
    assert "\tSM64 = (-9223372036854775807LL - 1)," in text
    assert "\tint : 0" not in text
    # declared before use: struct other embeds self_ref, which points to other
    assert text.index("struct other;") < text.index("struct self_ref {") < text.index(
        "struct other {")
    # no FUNC, VAR or DATASEC
    assert "g_all" not in text and "lone_var" not in text and "func" not in text


@pytest.mark.slow
def test_corpus_layouts(corpus_objects: list[Path], tmp_path: Path) -> None:
    units: list[tuple[Btf, list[int] | None]] = [(read_btf(str(o)), None)
                                                 for o in corpus_objects]
    n = check_layouts(tmp_path, units)
    print(f"{n} layout checks over {len(units)} objects")
    assert len(units) == len(corpus_objects) >= 61
    assert n > 10000


@pytest.mark.slow
@pytest.mark.skipif(not VMLINUX.exists(), reason="kernel has no /sys/kernel/btf/vmlinux")
def test_vmlinux_layout(tmp_path: Path) -> None:
    btf = read_btf(str(VMLINUX))
    fixed = ["task_struct", "sk_buff", "sock", "inode", "file", "page", "mm_struct",
             "net_device", "bpf_prog", "tcp_sock", "perf_event", "request_queue"]
    ids = [btf.find(name, Kind.STRUCT)[0].id for name in fixed]
    pool = [i for i in record_ids(btf) if i not in ids]
    ids += random.Random(2).sample(pool, 400)
    n = check_layouts(tmp_path, [(btf, ids)])
    print(f"{n} layout checks over {len(ids)} vmlinux records")
    assert n > 5000


def test_cli(case_objects: list[Path]) -> None:
    r = run_btfgen("dump", case_objects[0], "--format", "c")
    assert r.returncode == 0, r.stderr
    assert r.stdout == format_c(read_btf(str(case_objects[0])))
    bad = run_btfgen("dump", ROOT / "pyproject.toml", "--format", "c")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "pyproject.toml" in bad.stderr


# -- untrusted and unusual BTF -------------------------------------------------


def _dump(b: BtfBuilder) -> Btf:
    return parse_btf(b.build())


def test_names_are_sanitized_and_deduplicated(tmp_path: Path) -> None:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    c = b.int_("char", 1, encoding=INT_SIGNED)
    s1 = b.struct("dup", 4, [("a", i, 0)])
    s2 = b.struct("dup", 8, [("a", i, 0), ("b", i, 32)])
    b.union("dup", 4, [("x", i, 0)])
    evil = b.struct(b"x; } int main(void) { /*\xff", 1, [(b"bad name", c, 0)])
    b.struct("struct", 2, [("a", c, 0), ("a", c, 8)])  # keyword tag, duplicate members
    b.typedef("dup", s1)
    b.typedef("dup", s2)
    b.enum("e1", 4, [("DUP", 1), ("dup", 2)])
    b.enum("e2", 4, [("DUP", 3), ("9lives", 4)])
    u32 = b.int_("u32", 4)  # not a C type name: spelled as unsigned int
    holder = b.struct("holder", 24, [("p", s1, 0), ("q", s2, 32), ("r", evil, 96),
                                     ("u", u32, 128)])
    btf = _dump(b)
    text = format_c(btf)
    assert "struct dup {" in text and "struct dup___2 {" in text
    assert "union dup___3 {" in text
    assert "typedef struct dup dup;" in text and "typedef struct dup___2 dup___2;" in text
    assert "\tDUP = 1,\n\tdup___3 = 2," in text
    assert "\tDUP___2 = 3,\n\t_9lives = 4," in text
    assert "struct x____int_main_void_______ {\n\tchar bad_name;\n};" in text
    assert "struct struct_ {\n\tchar a;\n\tchar a___2;\n};" in text
    assert "\tunsigned int u;" in text
    assert "main(" not in text
    assert check_layouts(tmp_path, [(btf, [holder])]) >= 5


def test_struct_and_fwd_share_a_tag(tmp_path: Path) -> None:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    f = b.fwd("node")
    fu = b.fwd("node", union=True)
    node = b.struct("node", 16, [("next", b.ptr(f), 0), ("v", i, 64)])
    b.struct("user", 16, [("n", b.ptr(fu), 0), ("m", b.ptr(node), 64)])
    btf = _dump(b)
    text = format_c(btf)
    assert "union node___2;" in text and "\tstruct node *next;" in text
    assert check_layouts(tmp_path, [(btf, None)]) >= 4


def test_gaps_and_odd_sizes_from_raw_btf(tmp_path: Path) -> None:
    """Layouts no single C attribute gives: explicit padding must do it."""
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    c = b.int_("char", 1, encoding=INT_SIGNED)
    long_ = b.int_("long", 8, signed=True)
    ui = b.int_("unsigned int", 4)
    # a 3-byte gap, a member at 1 (packed), tail padding past the natural size
    b.struct("gappy", 32, [("a", c, 0), ("b", i, 32), ("l", long_, 128)])
    b.struct("misaligned", 13, [("a", c, 0), ("b", i, 8), ("l", long_, 40)])
    # legacy (kind_flag 0) bitfield encoding and bit-granular gaps
    bf3 = b.int_("unsigned int", 4, nr_bits=3)
    b.struct("legacy_bits", 8, [("x", bf3, 0), ("y", bf3, 10), ("z", i, 32)])
    b.struct("kf_bits", 8, [("x", ui, 1, 3), ("y", ui, 37, 20)], kflag=True)
    b.union("big_union", 24, [("a", i, 0), ("b", c, 0)])
    b.union("small_pad_union", 8, [("a", c, 0)])
    b.enum64("e_small64", 8, [("E_S64", 1)])
    b.enum("e_byte", 1, [("E_B", 1)])
    b.struct("enums", 16, [("e8", b.next_id - 2, 0), ("e1", b.next_id - 1, 64)])
    b.struct("empty_sized", 12, [])
    btf = _dump(b)
    text = format_c(btf)
    assert "} __attribute__((packed));" in text.split("struct misaligned")[1]
    assert "unsigned char __pad[24];" in text
    assert "enum e_small64 {\n\tE_S64 = 1,\n} __attribute__((mode(DI)));" in text
    assert check_layouts(tmp_path, [(btf, None)]) >= 15


def test_split_btf_includes_its_base(tmp_path: Path) -> None:
    base = BtfBuilder()
    i = base.int_("int", 4, signed=True)
    inner = base.struct("base_rec", 8, [("a", i, 0), ("b", i, 32)])
    split = BtfBuilder(base=base)
    e = split.enum("", 4, [])
    split.struct("mod_rec", 24, [("r", inner, 0), ("e", e, 64), ("p", split.ptr(inner), 128)])
    btf = parse_btf(split.build(), base=parse_btf(base.build()))
    text = format_c(btf)
    assert text.index("struct base_rec {") < text.index("struct mod_rec {")
    assert "\tunsigned int e;" in text
    assert check_layouts(tmp_path, [(btf, None)]) >= 5


def test_too_deep_nesting_is_a_btf_error(tmp_path: Path) -> None:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    depth = 3000  # outermost first, so nothing is laid out before it is needed
    for k in range(depth):
        b.struct(f"s{k}", 4, [("m", b.next_id + 1 if k < depth - 1 else i, 0)])
    path = tmp_path / "deep.btf"
    path.write_bytes(b.build())
    with pytest.raises(BtfError, match="nested too deeply"):
        format_c(parse_btf(path.read_bytes()))
    r = run_btfgen("dump", path, "--format", "c")
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
