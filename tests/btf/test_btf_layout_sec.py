"""Kernel 7.1 BTF headers: the layout section's offset and length after the string
section's, validated; header bytes past the known fields ignored as libbpf does."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from btfgen.btf_parse import KNOWN_LAYOUT, parse_btf
from btfgen.dump.raw import format_raw
from btfgen.errors import BtfError
from tests.helpers.btf_builder import BtfBuilder

#: One ``struct btf_layout`` per kind id 0..19, as a 7.1 kernel writes it.
LAYOUT = [KNOWN_LAYOUT[k] for k in range(20)]


def layout_bytes(order: str, entries: list[tuple[int, int]] = LAYOUT, flags: int = 0) -> bytes:
    e = "<" if order == "little" else ">"
    return b"".join(struct.pack(e + "BBH", i, el, flags) for i, el in entries)


def sample() -> BtfBuilder:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    b.struct("pair", 8, [("a", i, 0), ("b", i, 32)])
    return b


def with_layout(order: str = "little", *, hdr_len: int = 32, off: int | None = None,
                length: int | None = None, layout: bytes | None = None,
                extra: bytes = b"") -> bytes:
    """``sample()`` with a layout section after its strings (as pahole places it)."""
    b = sample()
    tsec, ssec = b.type_section(order), bytes(b.strtab)
    lay = layout_bytes(order) if layout is None else layout
    pad = (-(len(tsec) + len(ssec))) % 4
    lay_off = len(tsec) + len(ssec) + pad if off is None else off
    e = "<" if order == "little" else ">"
    tail = struct.pack(e + "II", lay_off, len(lay) if length is None else length) + extra
    return b.build(order, hdr_len=hdr_len, header_tail=tail, trailer=bytes(pad) + lay)


@pytest.mark.parametrize("order", ["little", "big"])
def test_layout_section_parsed(order: str) -> None:
    btf = parse_btf(with_layout(order))
    assert [t.name for t in btf.types] == ["int", "pair"]
    h = btf.header
    assert h.hdr_len == 32 and h.layout_len == 80 and h.layout_off % 4 == 0
    assert h.layout[4] == (0, 12, 0) and h.layout[19] == (0, 12, 0) and len(h.layout) == 20
    # The same types as without a layout section.
    assert format_raw(btf) == format_raw(parse_btf(sample().build(order)))


def test_layout_with_more_kinds_than_known() -> None:
    """A newer kernel's kinds past ENUM64 are described, not refused."""
    btf = parse_btf(with_layout(layout=layout_bytes("little", LAYOUT + [(8, 4), (0, 16)])))
    assert btf.header.layout[21] == (0, 16, 0)


def test_unknown_header_tail_ignored_as_libbpf() -> None:
    """libbpf reads the fields it knows and ignores the rest of a longer header."""
    btf = parse_btf(with_layout(hdr_len=40, extra=b"\x01\x02\x03\x04\xff\xff\xff\xff"))
    assert [t.name for t in btf.types] == ["int", "pair"]
    # A header longer than 24 bytes but shorter than 32 has no layout fields.
    b = sample()
    assert len(parse_btf(b.build(hdr_len=28, header_tail=b"\x07\0\0\0")).types) == 2


@pytest.mark.parametrize(("kw", "message"), [
    ({"off": 2}, r"BTF layout section offset 2 is not 4-byte aligned"),
    ({"length": 6}, r"BTF layout section length 6 is not a multiple of 4"),
    ({"length": 4000}, r"BTF layout section \[\d+, \+4000\) overruns the \d+-byte body"),
    ({"off": 0}, r"BTF layout section overlaps the type or string section"),
    ({"layout": layout_bytes("little", [(0, 0), (4, 0), (0, 0), (12, 0), (0, 8)])},
     r"BTF layout of kind STRUCT is \(0, 8\) bytes, expected \(0, 12\)"),
])
def test_bad_layout_refused(kw: dict[str, object], message: str) -> None:
    with pytest.raises(BtfError, match=message):
        parse_btf(with_layout(**kw))  # type: ignore[arg-type]


def test_cli_and_bpftool_read_layout_header(tmp_path: Path) -> None:
    """``btfgen dump`` of a blob with the 7.1 header is what bpftool prints, and
    ``gen`` works on it (what `gen /sys/kernel/btf/vmlinux` meets on a 7.1 kernel)."""
    from tests.helpers.build import run_btfgen

    path = tmp_path / "vmlinux71"
    path.write_bytes(with_layout())
    ours = run_btfgen("dump", path, check=True).stdout
    theirs = subprocess.run(["bpftool", "btf", "dump", "file", str(path)],
                            capture_output=True, text=True, check=True).stdout
    assert ours == theirs
    r = run_btfgen("gen", path, "--type", "struct pair", "-o", tmp_path / "m.py", check=True)
    assert r.returncode == 0 and "class Pair" in (tmp_path / "m.py").read_text()
