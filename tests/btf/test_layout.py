"""btfgen.btf_layout: the record layout simulator against clang, and the plans
(packing, padding, gaps) it gives for BTF records."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from btfgen.btf_layout import (
    CField,
    Gap,
    Pad,
    RecordSim,
    is_packed,
    natural_offset,
    pad_pieces,
    plan_record,
    struct_gaps,
    type_align,
)
from btfgen.btf_model import Btf, Struct, Union
from btfgen.btf_parse import parse_btf
from btfgen.elf.reader import read_btf
from tests.helpers.btf_builder import INT_SIGNED, BtfBuilder
from tests.helpers.build import compile_bpf

_TYPES = {"char": 1, "short": 2, "int": 4, "long": 8, "__int128": 16}


def _random_record(rng: random.Random, n: int) -> tuple[str, bool, bool, list[tuple]]:
    """A random struct/union: C text and its fields for RecordSim."""
    is_union = rng.random() < 0.15
    packed = rng.random() < 0.3
    fields: list[tuple] = []  # (name or None, ctype, size, width or None)
    for i in range(rng.randint(1, 8)):
        ctype = rng.choice(list(_TYPES))
        size = _TYPES[ctype]
        r = rng.random()
        if r < 0.45 and ctype != "__int128":
            width = rng.randint(1, 8 * size)
            named = rng.random() < 0.85
            fields.append((f"f{i}" if named else None, ctype, size, width))
        elif r < 0.5 and not is_union:
            fields.append((None, ctype, size, 0))
        else:
            fields.append((f"f{i}", ctype, size, None))
    body = "".join(
        f"\t{'unsigned ' if w else ''}{c} {name or ''}{f': {w}' if w is not None else ''};\n"
        for name, c, _, w in fields
    )
    kw = "union" if is_union else "struct"
    text = f"{kw} r{n} {{\n{body}}}{' __attribute__((packed))' if packed else ''};\n"
    return text, is_union, packed, fields


@pytest.mark.parametrize("cc", ["clang", "gcc"])
def test_record_sim_matches_compiler(cc: str, tmp_path: Path) -> None:
    """800 random records with bitfields (named, unnamed, zero-width), packed or
    not, structs and unions: RecordSim gives clang's offsets, sizes, alignment."""
    rng = random.Random(7)
    decls, probes, expected = [], [], {}
    for n in range(800):
        text, is_union, packed, fields = _random_record(rng, n)
        decls.append(text)
        sim = RecordSim(is_union, packed)
        for name, _, size, width in fields:
            off = sim.add(CField(size, size, width, named=name is not None))
            if name is None:
                continue
            if width is None:
                probes.append(f'P("r{n}.{name} %lu\\n", __builtin_offsetof(struct_or(r{n}), '
                              f"{name}) * 8);")
                expected[f"r{n}.{name}"] = off
            else:
                probes.append(f'BF(r{n}, "r{n}.{name}", {name});')
                expected[f"r{n}.{name}"] = off
        kw = "union" if is_union else "struct"
        probes.append(f'P("r{n} %lu %lu\\n", sizeof({kw} r{n}), _Alignof({kw} r{n}));')
        expected[f"r{n}"] = (sim.size(), sim.align)
        decls.append(f"#define KW_r{n} {kw}\n")
    src = tmp_path / "sim.c"
    src.write_text(
        "#define P(...) __builtin_printf(__VA_ARGS__)\n"
        "#define struct_or(r) KW_##r r\n" + "".join(decls)
        + "static long first_bit(const unsigned char *p, unsigned long n)\n"
        "{ for (unsigned long i = 0; i < n * 8; i++) if ((p[i / 8] >> (i % 8)) & 1) return i;"
        " return -1; }\n"
        "#define BF(r, key, f) do { KW_##r r v; __builtin_memset(&v, 0, sizeof(v)); v.f = 1; "
        "P(key \" %ld\\n\", first_bit((const unsigned char *)&v, sizeof(v))); } while (0)\n"
        "int main(void)\n{\n" + "\n".join(probes) + "\nreturn 0;\n}\n")
    exe = tmp_path / "sim"
    subprocess.run([cc, "-w", "-o", str(exe), str(src)], check=True)
    got = {}
    for line in subprocess.run([str(exe)], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        key, *vals = line.split()
        got[key] = int(vals[0]) if len(vals) == 1 else tuple(map(int, vals))
    wrong = {k: (got.get(k), v) for k, v in expected.items() if got.get(k) != v}
    assert not wrong, list(wrong.items())[:10]
    assert len(expected) > 3500


def test_natural_offset_and_pad_pieces() -> None:
    assert natural_offset(0, 8) == 0 and natural_offset(1, 8) == 8 and natural_offset(9, 4) == 12
    assert pad_pieces(8, 128) == [(64, 56), (64, 64)]
    assert pad_pieces(3, 10) == [(16, 7)]
    assert pad_pieces(32, 64) == [(32, 32)]
    assert pad_pieces(0, 8) == [(8, 8)]
    assert pad_pieces(60, 200) == [(8, 4), (64, 64), (64, 64), (8, 8)]
    assert pad_pieces(5, 5) == []


def _btf(b: BtfBuilder) -> Btf:
    return parse_btf(b.build())


def _rec(btf: Btf, name: str) -> Struct | Union:
    t = btf.find(name)[0]
    assert isinstance(t, (Struct, Union))
    return t


def test_plans_for_hand_made_records() -> None:
    b = BtfBuilder()
    c = b.int_("char", 1, encoding=INT_SIGNED)
    i = b.int_("int", 4, signed=True)
    lng = b.int_("long", 8, signed=True)
    ui = b.int_("unsigned int", 4)
    b.struct("natural", 16, [("a", c, 0), ("b", i, 32), ("l", lng, 64)])
    b.struct("gap", 32, [("a", c, 0), ("l", lng, 128)])  # aligned(16) member, tail pad
    b.struct("packed", 5, [("a", c, 0), ("b", i, 8)])
    b.struct("packed_tail", 5, [("b", i, 0), ("a", c, 32)])
    b.struct("bits", 8, [("x", ui, 1, 3), ("y", ui, 37, 20)], kflag=True)
    b.union("wide_union", 16, [("i", i, 0)])
    b.struct("overlap", 8, [("a", i, 0), ("b", i, 16)])
    b.struct("embeds_packed", 12, [("c", c, 0), ("p", b.next_id - 5, 8)])
    btf = _btf(b)

    natural = plan_record(btf, _rec(btf, "natural"))
    assert natural.items == (0, 1, 2) and not natural.packed and natural.align == 8
    assert struct_gaps(btf, _rec(btf, "natural")) == []

    gap = _rec(btf, "gap")
    assert plan_record(btf, gap).items == (0, Pad(8, 128), 1, Pad(192, 256))
    assert struct_gaps(btf, gap) == [Gap(1, 15), Gap(24, 8)]
    assert not is_packed(btf, gap) and type_align(btf, gap.id) == 8

    for name in ("packed", "packed_tail"):
        rec = _rec(btf, name)
        assert is_packed(btf, rec) and type_align(btf, rec.id) == 1
        assert struct_gaps(btf, rec) == []

    bits = _rec(btf, "bits")
    assert plan_record(btf, bits).items == (Pad(0, 1), 0, Pad(4, 37), 1)
    assert not is_packed(btf, bits)
    assert struct_gaps(btf, bits) == [Gap(1, 3)]

    wide = plan_record(btf, _rec(btf, "wide_union"))
    assert wide.items == (0, Pad(0, 128)) and wide.align == 4

    overlap = plan_record(btf, _rec(btf, "overlap"))
    assert not overlap.exact and overlap.packed

    # a packed record embedded at an odd offset: the container needs no packing
    emb = _rec(btf, "embeds_packed")
    assert plan_record(btf, emb).items == (0, 1, Pad(48, 96)) and not is_packed(btf, emb)


def test_plans_for_compiled_records(tmp_path: Path) -> None:
    src = """
struct a { char c; int i __attribute__((aligned(16))); } g_a;
struct p { char c; long l; } __attribute__((packed)) g_p;
struct bf { unsigned a : 3; int : 0; unsigned b : 4; char c; } g_bf;
union u { char c[3]; short s; } __attribute__((aligned(8))) g_u;
"""
    btf = read_btf(str(compile_bpf(src, tmp_path / "l.bpf.o")))
    a, p, bf, u = (_rec(btf, n) for n in ("a", "p", "bf", "u"))
    assert struct_gaps(btf, a) == [Gap(1, 15), Gap(20, 12)]
    assert is_packed(btf, p) and not is_packed(btf, a) and not is_packed(btf, bf)
    assert plan_record(btf, bf).items == (0, Pad(3, 32), 1, 2)
    assert struct_gaps(btf, bf) == [Gap(1, 3)]
    assert plan_record(btf, u).items == (0, 1, Pad(0, 64))
