"""Unit tests of the BTF parser: one per kind, both byte orders, the resolving
helpers, and one per kind of malformed input (each asserting its message)."""

from __future__ import annotations

import random
import re

import pytest

from btfgen.btf_model import (
    Array,
    Bitfield,
    Btf,
    Const,
    Datasec,
    DeclTag,
    Enum,
    Enum64,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    IntEncoding,
    Kind,
    Ptr,
    Restrict,
    Struct,
    Typedef,
    TypeTag,
    Union,
    Var,
    Volatile,
    name_bytes,
)
from btfgen.btf_parse import parse_btf
from btfgen.errors import BtfError
from tests.helpers.btf_builder import EXTERN, GLOBAL, INT_BOOL, INT_CHAR, STATIC, BtfBuilder

ORDERS = ("little", "big")
Kinds = tuple[Btf, dict[str, int]]


def every_kind() -> tuple[BtfBuilder, dict[str, int]]:
    """A BTF with each kind at least once; returns the builder and named ids."""
    b = BtfBuilder()
    ids: dict[str, int] = {}
    ids["int"] = b.int_("int", 4, signed=True)
    ids["char"] = b.int_("char", 1, encoding=INT_CHAR)
    ids["bool"] = b.int_("_Bool", 1, encoding=INT_BOOL)
    ids["u64"] = b.int_("unsigned long long", 8)
    ids["ptr"] = b.ptr(ids["int"])
    ids["arr"] = b.array(ids["char"], ids["int"], 16)
    ids["kstruct"] = b.struct("kbits", 8, [("a", ids["int"], 0, 3), ("b", ids["u64"], 3, 40),
                                          ("c", ids["char"], 48)], kflag=True)
    ids["lint"] = b.int_("int", 4, signed=True, bits_offset=3, nr_bits=5)
    ids["lstruct"] = b.struct("lbits", 4, [("x", ids["lint"], 8), ("y", ids["int"], 0)])
    ids["union"] = b.union("u", 8, [("i", ids["int"], 0), ("l", ids["u64"], 0)])
    ids["enum"] = b.enum("e", 4, [("A", 1), ("B", 0xFFFFFFFF)])
    ids["senum"] = b.enum("se", 4, [("N", -3), ("P", 5)], signed=True)
    ids["fwd"] = b.fwd("fs")
    ids["fwdu"] = b.fwd("fu", union=True)
    ids["typedef"] = b.typedef("myint", ids["int"])
    ids["volatile"] = b.volatile(ids["int"])
    ids["const"] = b.const(ids["volatile"])
    ids["restrict"] = b.restrict(ids["ptr"])
    ids["proto"] = b.func_proto(ids["int"], [("x", ids["int"]), ("", 0)])
    ids["func"] = b.func("f", ids["proto"], GLOBAL)
    ids["var"] = b.var("v", ids["int"], GLOBAL)
    ids["svar"] = b.var("sv", ids["arr"], STATIC)
    ids["evar"] = b.var("ev", ids["int"], EXTERN)
    ids["datasec"] = b.datasec(".data", 24, [(ids["var"], 0, 4), (ids["svar"], 4, 16)])
    ids["float"] = b.float_("double", 8)
    ids["decl_tag"] = b.decl_tag("tag", ids["kstruct"], 1)
    ids["type_tag"] = b.type_tag("user", ids["int"])
    ids["enum64"] = b.enum64("e64", 8, [("BIG", 1 << 40), ("ALL", -1)])
    ids["senum64"] = b.enum64("se64", 8, [("NEG", -(1 << 40)), ("MIN", -(1 << 63))], signed=True)
    return b, ids


@pytest.fixture(params=ORDERS)
def kinds(request: pytest.FixtureRequest) -> Kinds:
    b, ids = every_kind()
    btf = parse_btf(b.build(request.param))
    assert btf.byteorder == request.param
    return btf, ids


def test_int(kinds: Kinds) -> None:
    btf, ids = kinds
    t = btf.type(ids["int"])
    assert isinstance(t, Int)
    assert (t.name, t.size, t.bits_offset, t.nr_bits, t.signed) == ("int", 4, 0, 32, True)
    c, bo = btf.type(ids["char"]), btf.type(ids["bool"])
    assert isinstance(c, Int) and c.is_char and not c.signed
    assert isinstance(bo, Int) and bo.is_bool and bo.encoding == IntEncoding.BOOL
    u = btf.type(ids["u64"])
    assert isinstance(u, Int) and not u.signed and u.size == 8


def test_ptr_array_and_modifiers(kinds: Kinds) -> None:
    btf, ids = kinds
    p = btf.type(ids["ptr"])
    assert isinstance(p, Ptr) and p.type_id == ids["int"] and p.name == ""
    a = btf.type(ids["arr"])
    assert isinstance(a, Array)
    assert (a.type_id, a.index_type_id, a.nelems) == (ids["char"], ids["int"], 16)
    assert isinstance(btf.type(ids["typedef"]), Typedef)
    assert isinstance(btf.type(ids["volatile"]), Volatile)
    c = btf.type(ids["const"])
    assert isinstance(c, Const) and c.type_id == ids["volatile"]
    assert isinstance(btf.type(ids["restrict"]), Restrict)
    tt = btf.type(ids["type_tag"])
    assert isinstance(tt, TypeTag) and tt.name == "user" and tt.type_id == ids["int"]


def test_struct_bitfields_kind_flag(kinds: Kinds) -> None:
    btf, ids = kinds
    s = btf.type(ids["kstruct"])
    assert isinstance(s, Struct) and s.kind_flag and s.size == 8
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in s.members] == [
        ("a", 0, 3), ("b", 3, 40), ("c", 48, 0)]
    assert [btf.member_bitfield(s, m) for m in s.members] == [
        Bitfield(0, 3), Bitfield(3, 40), Bitfield(48, 0)]


def test_struct_bitfields_legacy_encoding(kinds: Kinds) -> None:
    btf, ids = kinds
    s = btf.type(ids["lstruct"])
    assert isinstance(s, Struct) and not s.kind_flag
    x, y = s.members
    assert (x.bit_offset, x.bitfield_size) == (8, 0)  # raw: width lives in the INT
    assert btf.member_bitfield(s, x) == Bitfield(8 + 3, 5)
    assert btf.member_bitfield(s, y) == Bitfield(0, 0)


def test_union(kinds: Kinds) -> None:
    btf, ids = kinds
    u = btf.type(ids["union"])
    assert isinstance(u, Union) and u.size == 8
    assert [(m.name, m.type_id, m.bit_offset) for m in u.members] == [
        ("i", ids["int"], 0), ("l", ids["u64"], 0)]


def test_enum_signedness(kinds: Kinds) -> None:
    btf, ids = kinds
    e, se = btf.type(ids["enum"]), btf.type(ids["senum"])
    assert isinstance(e, Enum) and not e.signed
    assert [(v.name, v.value) for v in e.values] == [("A", 1), ("B", 0xFFFFFFFF)]
    assert isinstance(se, Enum) and se.signed
    assert [(v.name, v.value) for v in se.values] == [("N", -3), ("P", 5)]


def test_enum64(kinds: Kinds) -> None:
    btf, ids = kinds
    e, se = btf.type(ids["enum64"]), btf.type(ids["senum64"])
    assert isinstance(e, Enum64) and not e.signed and e.size == 8
    assert [v.value for v in e.values] == [1 << 40, (1 << 64) - 1]
    assert isinstance(se, Enum64) and se.signed
    assert [v.value for v in se.values] == [-(1 << 40), -(1 << 63)]


def test_fwd_union_flag(kinds: Kinds) -> None:
    btf, ids = kinds
    fs, fu = btf.type(ids["fwd"]), btf.type(ids["fwdu"])
    assert isinstance(fs, Fwd) and not fs.is_union and fs.name == "fs"
    assert isinstance(fu, Fwd) and fu.is_union
    assert btf.c_spelling(ids["fwdu"]) == "union fu"


def test_func_and_proto(kinds: Kinds) -> None:
    btf, ids = kinds
    f = btf.type(ids["func"])
    assert isinstance(f, Func) and f.type_id == ids["proto"] and f.linkage == GLOBAL
    p = btf.type(ids["proto"])
    assert isinstance(p, FuncProto) and p.return_type_id == ids["int"]
    assert [(q.name, q.type_id) for q in p.params] == [("x", ids["int"]), ("", 0)]


def test_var_datasec_float_decl_tag(kinds: Kinds) -> None:
    btf, ids = kinds
    v, sv, ev = (btf.type(ids[k]) for k in ("var", "svar", "evar"))
    assert isinstance(v, Var) and (v.name, v.linkage) == ("v", GLOBAL)
    assert isinstance(sv, Var) and sv.linkage == STATIC
    assert isinstance(ev, Var) and ev.linkage == EXTERN
    d = btf.type(ids["datasec"])
    assert isinstance(d, Datasec) and (d.name, d.size) == (".data", 24)
    assert [(s.type_id, s.offset, s.size) for s in d.vars] == [
        (ids["var"], 0, 4), (ids["svar"], 4, 16)]
    fl = btf.type(ids["float"])
    assert isinstance(fl, Float) and fl.size == 8
    dt = btf.type(ids["decl_tag"])
    assert isinstance(dt, DeclTag) and (dt.type_id, dt.component_idx) == (ids["kstruct"], 1)


def test_every_kind_present_and_header(kinds: Kinds) -> None:
    btf, _ = kinds
    assert {t.kind for t in btf} == set(Kind) - {Kind.VOID}
    assert btf.header.magic == 0xEB9F and btf.header.version == 1
    assert btf.type(0).kind == Kind.VOID
    assert btf.find("e64", Kind.ENUM64)[0].name == "e64"


def test_both_byte_orders_same_model() -> None:
    b, _ = every_kind()
    little, big = parse_btf(b.build("little")), parse_btf(b.build("big"))
    assert little.types == big.types
    assert little.strings == big.strings


def test_size_align_skip_modifiers(kinds: Kinds) -> None:
    btf, ids = kinds
    assert btf.size_of(ids["const"]) == 4 and btf.align_of(ids["const"]) == 4
    assert btf.size_of(ids["arr"]) == 16 and btf.align_of(ids["arr"]) == 1
    assert btf.size_of(ids["kstruct"]) == 8 and btf.align_of(ids["kstruct"]) == 8
    assert btf.size_of(ids["ptr"]) == 8 and btf.size_of(ids["svar"]) == 16
    assert btf.size_of(ids["typedef"]) == 4 and btf.size_of(ids["enum64"]) == 8
    assert btf.skip_modifiers(ids["const"]).id == ids["int"]
    assert btf.skip_modifiers(ids["typedef"]).id == ids["int"]
    assert btf.skip_modifiers(ids["typedef"], keep_typedefs=True).id == ids["typedef"]
    assert btf.skip_modifiers(ids["type_tag"]).id == ids["int"]
    with pytest.raises(BtfError, match="has no size"):
        btf.size_of(ids["fwd"])


def test_names_keep_their_bytes() -> None:
    b = BtfBuilder()
    raw = b"caf\xe9\xff"
    b.struct(raw, 0, [])
    t = parse_btf(b.build()).types[0]
    assert name_bytes(t.name) == raw


@pytest.mark.parametrize("word", [b"hello", b"h\xc3\xa9llo\xff"])
def test_name_offset_inside_a_string(word: bytes) -> None:
    b = BtfBuilder()
    off = b.string(word)
    b.struct(off + 2, 0, [])  # names may share a suffix of another string
    b.struct("after", 0, [])
    first, second = parse_btf(b.build()).types
    assert name_bytes(first.name) == word[2:]
    assert second.name == "after"


def test_split_btf_ids_and_strings() -> None:
    base = BtfBuilder()
    i = base.int_("int", 4, signed=True)
    s = base.struct("s", 4, [("a", i, 0)])
    split = BtfBuilder(base=base)
    p = split.ptr(s)
    t = split.typedef("s_t", s)
    base_btf = parse_btf(base.build())
    btf = parse_btf(split.build(), base=base_btf)
    assert (btf.start_id, p, t) == (3, 3, 4)
    assert btf.type(t).name == "s_t" and btf.type(s).name == "s"
    assert btf.size_of(t) == 4
    assert [x.id for x in btf.all_types()] == [1, 2, 3, 4]


# -- malformed input -------------------------------------------------------------

def small() -> BtfBuilder:
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    return b


def bad(data: bytes, message: str, base: object = None) -> None:
    with pytest.raises(BtfError, match=message) as e:
        parse_btf(data, base)  # type: ignore[arg-type]
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("order", ORDERS)
def test_truncated_header(order: str) -> None:
    bad(small().build(order)[:10], r"truncated BTF: 10 bytes, header needs 24")
    bad(b"\x9f", r"truncated BTF: no header")


def test_bad_magic() -> None:
    bad(small().build(magic=0x1234), r"bad BTF magic 0x1234 \(expected 0xeb9f\)")


def test_bad_version() -> None:
    bad(small().build(version=2), r"unsupported BTF version 2")


def test_bad_hdr_len() -> None:
    bad(small().build(hdr_len=16), r"BTF header length 16 invalid")
    bad(small().build(hdr_len=1 << 20, header_tail=b""), r"BTF header length 1048576 invalid")
    bad(small().build(hdr_len=32, header_tail=b"\1" + bytes(7)),
        r"BTF layout section offset 1 is not 4-byte aligned")
    assert len(parse_btf(small().build(hdr_len=32)).types) == 1  # zero tail is fine


def test_section_overruns() -> None:
    bad(small().build(type_len=400), r"BTF type section \[0, \+400\) overruns")
    bad(small().build(str_len=100), r"BTF string section \[16, \+100\) overruns")
    bad(small().build("big", type_len=400), r"BTF type section \[0, \+400\) overruns")
    bad(small().build()[:30], r"BTF type section \[0, \+16\) overruns the 6-byte body")


def test_section_overlap_and_alignment() -> None:
    bad(small().build(str_off=8, str_len=4), r"BTF type and string sections overlap")
    bad(small().build(type_off=2), r"type section offset 2 is not 4-byte aligned")
    bad(small().build(type_len=14), r"type section length 14 is not a multiple of 4")


def test_string_section_errors() -> None:
    bad(small().build(strings=b"\0int"), r"BTF string section is not NUL-terminated")
    bad(small().build(strings=b"xint\0"), r"does not start with an empty string")
    bad(small().build(strings=b""), r"BTF string section is empty")


def test_string_offset_out_of_range() -> None:
    b = small()
    b.raw_type(999, 7, 0, False, 0)
    bad(b.build(), r"type id 2 \(FWD\): name offset 999 out of range \(strings end at 5\)")
    b = small()
    b.struct("s", 4, [(777, 1, 0)])
    bad(b.build(), r"type id 2 \(STRUCT\): name offset 777 out of range")


def test_unknown_kind() -> None:
    b = small()
    b.raw_type(0, 20, 0, False, 0)
    bad(b.build(), r"type id 2: unknown BTF kind 20")
    b = small()
    b.raw_type(0, 0, 0, False, 0)
    bad(b.build(), r"type id 2: unknown BTF kind 0")


def test_reference_out_of_range() -> None:
    b = small()
    b.ptr(5)
    bad(b.build(), r"type id 2 \(PTR\): type refers to type id 5, out of range \(max 2\)")
    b = small()
    b.struct("s", 4, [("m", 9, 0)])
    bad(b.build(), r"type id 2 \(STRUCT\): member 'm' refers to type id 9")
    b = small()
    b.func_proto(1, [("p", 42)])
    bad(b.build(), r"type id 2 \(FUNC_PROTO\): parameter 'p' refers to type id 42")
    b = small()
    b.decl_tag("t", 77)
    bad(b.build(), r"type id 2 \(DECL_TAG\): type refers to type id 77")
    b = small()
    b.datasec(".data", 4, [(50, 0, 4)])
    bad(b.build(), r"type id 2 \(DATASEC\): variable type id 50 out of range")


def test_untrusted_names_in_messages_stay_one_line() -> None:
    b = small()
    b.struct("s", 4, [(b"evil\n\x1b[31m\xff", 9, 0)])
    bad(b.build(), re.escape(r"member 'evil\n\x1b[31m\xff' refers"))


def test_func_must_point_to_func_proto() -> None:
    b = small()
    b.func("f", 1)
    bad(b.build(), r"type id 2 \(FUNC\): type id 1 is not a FUNC_PROTO")
    b = small()
    b.func("f", b.func_proto(1, []), 3)
    bad(b.build(), r"type id 3 \(FUNC\): invalid linkage 3")


def test_vlen_overruns_section() -> None:
    b = small()
    b.raw_type("s", 4, 100, False, 4, [0, 1, 0])
    bad(b.build(), r"type id 2 \(STRUCT\): 1200 bytes of data \(vlen 100\) overrun")
    b = small()
    b.raw_type("i", 1, 0, False, 4)  # INT without its extra word
    bad(b.build(), r"type id 2 \(INT\): 4 bytes of data \(vlen 0\) overrun")
    bad(small().build(types=small().type_section() + b"\0" * 8),
        r"type id 2: record truncated at end of type section")


def test_kind_specific_limits() -> None:
    b = small()
    b.int_("i", 3)
    bad(b.build(), r"type id 2 \(INT\): invalid size 3")
    b = small()
    b.int_("i", 4, nr_bits=30, bits_offset=4)
    bad(b.build(), r"type id 2 \(INT\): 30 bits at offset 4 exceed its size")
    b = small()
    b.int_("i", 4, encoding=3)
    bad(b.build(), r"type id 2 \(INT\): invalid encoding 0x3")
    b = small()
    b.typedef("", 1)
    bad(b.build(), r"type id 2 \(TYPEDEF\): has no name")
    b = small()
    b.decl_tag("t", 1, 0)
    bad(b.build(), r"type id 2 \(DECL_TAG\): component index 0 on a INT")


def test_reference_loops() -> None:
    b = BtfBuilder()
    b.typedef("A", 2)
    b.typedef("B", 1)
    bad(b.build(), r"type id 2 \(TYPEDEF\): reference loop through type id 1")
    b = BtfBuilder()
    b.struct("self", 8, [("me", 1, 0)])
    bad(b.build(), r"type id 1 \(STRUCT\): reference loop through type id 1")
    b = BtfBuilder()
    b.struct("outer", 8, [("arr", 2, 0)])
    b.array(3, 3, 2)
    b.const(1)
    bad(b.build(), r"type id 3 \(CONST\): reference loop through type id 1")


def test_loops_through_pointers_are_fine() -> None:
    b = BtfBuilder()
    b.struct("node", 8, [("next", 2, 0)])
    b.ptr(1)
    btf = parse_btf(b.build())
    assert btf.size_of(1) == 8


@pytest.mark.parametrize("order", ORDERS)
def test_mutated_blobs_fail_cleanly(order: str) -> None:
    """Bytes flipped anywhere: the parser either accepts the result (and the
    helpers work on it) or raises BtfError with one line -- nothing else."""
    data = every_kind()[0].build(order)
    rnd = random.Random(2)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(1500):
        blob = bytearray(data)
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(blob))
            blob[pos] = rnd.choice([0, 0xFF, rnd.randrange(256), blob[pos] ^ 1 << rnd.randrange(8)])
        try:
            btf = parse_btf(bytes(blob))
        except BtfError as e:
            assert "\n" not in str(e)
            outcomes["error"] += 1
            continue
        outcomes["ok"] += 1
        for t in btf.types:
            try:
                btf.size_of(t.id)
            except BtfError as e:
                assert "has no size" in str(e) or "loop" in str(e)
    assert outcomes["ok"] > 100 and outcomes["error"] > 100
