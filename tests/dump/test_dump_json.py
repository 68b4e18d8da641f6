"""``--format json``: the document parses and carries the model's values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from btfgen.btf_parse import parse_btf
from btfgen.dump.json import format_json
from btfgen.elf.reader import read_btf
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import DATA, compile_bpf


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    obj = compile_bpf((DATA / "kinds.bpf.c").read_text(),
                      tmp_path_factory.mktemp("json") / "kinds.bpf.o", clang="clang-19",
                      target="bpfeb")
    text = format_json(read_btf(str(obj)))
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def named(doc: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    found = [t for t in doc["types"] if t["kind"] == kind and t["name"] == name]
    assert len(found) == 1, (kind, name)
    t: dict[str, Any] = found[0]
    return t


def test_header_and_ids(doc: dict[str, Any]) -> None:
    assert doc["byteorder"] == "big"
    h = doc["header"]
    assert (h["magic"], h["version"], h["hdr_len"], h["type_off"]) == (0xEB9F, 1, 24, 0)
    assert h["str_off"] == h["type_len"] > 0
    assert doc["start_id"] == 1 and doc["start_str_off"] == 0
    assert [t["id"] for t in doc["types"]] == list(range(1, len(doc["types"]) + 1))
    assert {t["kind"] for t in doc["types"]} >= {"ENUM64", "DECL_TAG", "TYPE_TAG", "FLOAT"}


def test_struct_bitfields(doc: dict[str, Any]) -> None:
    bits = named(doc, "STRUCT", "bits")
    assert (bits["size"], bits["kind_flag"]) == (8, True)
    assert [(m["name"], m["bit_offset"], m["bitfield_size"]) for m in bits["members"]] == [
        ("a", 0, 3), ("b", 3, 5), ("c", 8, 40), ("tail", 48, 0)]
    u = named(doc, "UNION", "u")
    assert [m["name"] for m in u["members"]] == ["i", "f", "d", "pair"]
    assert {m["bit_offset"] for m in u["members"]} == {0}


def test_enums(doc: dict[str, Any]) -> None:
    neg = named(doc, "ENUM", "neg")
    assert neg["signed"] is True and neg["size"] == 4
    assert [(v["name"], v["value"]) for v in neg["values"]] == [("NEG_A", -3), ("NEG_B", 5)]
    assert named(doc, "ENUM", "small")["signed"] is False
    big, sbig = named(doc, "ENUM64", "big"), named(doc, "ENUM64", "sbig")
    assert [v["value"] for v in big["values"]] == [0xFFFFFFFF00, 1]
    assert [v["value"] for v in sbig["values"]] == [-0x1000000000, 7]


def test_other_kinds(doc: dict[str, Any]) -> None:
    types = {t["id"]: t for t in doc["types"]}
    assert named(doc, "INT", "_Bool")["encoding"] == "BOOL"
    assert named(doc, "INT", "__int128")["size"] == 16
    assert named(doc, "FWD", "fwd_union")["fwd_kind"] == "union"
    assert named(doc, "FWD", "fwd_only")["fwd_kind"] == "struct"
    assert named(doc, "FLOAT", "double")["size"] == 8
    assert types[named(doc, "TYPE_TAG", "user")["type_id"]]["name"] == "int"
    tag = named(doc, "DECL_TAG", "member_tag")
    assert tag["component_idx"] == 17 and types[tag["type_id"]]["name"] == "all"
    prog, helper = named(doc, "FUNC", "prog"), named(doc, "FUNC", "helper")
    assert (prog["linkage"], helper["linkage"]) == ("global", "static")
    proto = types[helper["type_id"]]
    assert proto["kind"] == "FUNC_PROTO"
    assert [p["name"] for p in proto["params"]] == ["p", "x"]
    assert named(doc, "VAR", "g_extern_kcfg")["linkage"] == "extern"
    ksyms = named(doc, "DATASEC", ".ksyms")
    assert [types[v["type_id"]]["name"] for v in ksyms["vars"]] == ["bpf_kfunc_example"]
    arr = types[named(doc, "VAR", "LICENSE")["type_id"]]
    assert (arr["kind"], arr["nelems"]) == ("ARRAY", 4)


def test_names_that_are_not_utf8() -> None:
    b = BtfBuilder()
    b.struct(b"bad\xff", 0, [])
    b.struct("caf\u00e9", 0, [])
    text = format_json(parse_btf(b.build()))
    text.encode("utf-8")  # valid UTF-8 whatever the names
    bad, good = json.loads(text)["types"]
    assert (bad["name"], bad["name_hex"]) == ("bad\ufffd", "626164ff")
    assert good["name"] == "caf\u00e9" and "name_hex" not in good
