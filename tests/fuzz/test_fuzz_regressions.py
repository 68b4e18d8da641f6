"""Replay every input the fuzzers ever found (tests/fuzz/regressions/, see its README):
in the bounded worker (all stages, generated module imported and exercised)
and through the CLI (exit 0, or exit 1 with one clean line)."""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.harness import BAD, Worker
from tests.helpers.build import run_btfgen

REGRESSIONS = Path(__file__).with_name("regressions")
FILES = sorted(p for p in REGRESSIONS.iterdir() if p.suffix != ".md")

#: Findings whose owner has not fixed them yet: file -> reason (see the README).
OPEN: dict[str, str] = {}
#: Of those, the ones the CLI also gets wrong (the others only break the module).
OPEN_CLI: set[str] = set()


def _maybe_open(name: str, only: set[str] | None = None) -> list[pytest.MarkDecorator]:
    if name in OPEN and (only is None or name in only):
        return [pytest.mark.xfail(strict=True, reason=OPEN[name])]
    return []


def _limit_memory() -> None:
    """The CLI gets the same 1 GiB address-space bound as the fuzz worker."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker(mem_mb=1024, timeout_s=10) as w:
        yield w


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=_maybe_open(p.name))
                                  for p in FILES])
def test_regression_in_worker(worker: Worker, path: Path) -> None:
    v = worker.run(path.read_bytes())
    assert v["status"] not in BAD, f"{v['status']} in {v.get('stage')}: {v.get('error')}\n" \
        f"{v.get('trace', '')}"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=_maybe_open(p.name, OPEN_CLI))
                                  for p in FILES])
def test_regression_on_cli(path: Path, tmp_path: Path) -> None:
    for args in (["dump", path, "--format", "c"], ["info", path],
                 ["gen", path, "-o", tmp_path / "out.py"]):
        r = subprocess.run([sys.executable, "-m", "btfgen", *map(str, args)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=120,
                           preexec_fn=_limit_memory)
        assert r.returncode in (0, 1), (args, r.stderr)
        assert "Traceback" not in r.stderr
        if r.returncode == 1:
            assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"btfgen: {path}: ")
            assert r.stdout == ""


# -- unit regressions for the fixes in foundation files ------------------------------

def test_layout_padding_is_constant_time_and_exact() -> None:
    """layout._pad used to add every 64-bit padding piece to the simulation: a
    struct size that lies (2^32-1) hung `dump -f c` and every layout plan.  The
    O(1) update must leave the simulator exactly where the pieces would."""
    import random
    import time

    from btfgen.btf_layout import CField, RecordSim, _pad, pad_pieces
    from btfgen.btf_parse import parse_btf
    from btfgen.dump.c import format_c
    from tests.helpers.btf_builder import BtfBuilder

    rng = random.Random(5)
    for _ in range(300):
        packed, width = rng.random() < 0.5, rng.randrange(1, 8)
        sim_a, sim_b = RecordSim(False, packed), RecordSim(False, packed)
        for sim in (sim_a, sim_b):  # leave the last byte partly used
            sim.add(CField(1, 1, width))
        start = sim_a.next_bit
        end = start + rng.randrange(0, 2000)
        for unit, width in pad_pieces(start, end):
            sim_b.add(CField(unit // 8, unit // 8, width, named=False))
        _pad(sim_a, [], start, end)
        assert (sim_a.data_bits, sim_a.unfilled, sim_a.align) == \
            (sim_b.data_bits, sim_b.unfilled, sim_b.align)

    b = BtfBuilder()
    c = b.int_("char", 1, signed=True)
    b.struct("hollow", 0xFFFFFFFF, [("a", c, 0)])
    b.struct("small", 24, [("a", c, 0)])
    t0 = time.monotonic()
    text = format_c(parse_btf(b.build()))
    assert time.monotonic() - t0 < 5
    assert "struct hollow {\n\tchar a;\n\tunsigned char __pad[4294967294];\n};" in text
    assert "\tchar a;\n\tlong: 56;\n\tlong: 64;\n\tlong: 64;\n};" in text  # as bpftool


def test_elf_names_that_are_not_utf8_match_btf(tmp_path: Path) -> None:
    """elf_image decoded symbol and section names with pyelftools' 'replace':
    a map whose name is not UTF-8 then had 'no ELF symbol' in .maps."""
    from btfgen.elf.reader import read_input
    from tests.helpers.build import compile_bpf
    from tests.helpers.mutate import replace_names

    src = """
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __type(value, __u64); } QQ00ZZZZZZZZ SEC(".maps");
__u64 QQ01ZZZZZZZZ SEC(".data.QQ02ZZZZZZZZ") = 1;
SEC("kprobe/x") int QQ03ZZZZZZZZ(void *ctx)
{ __u32 k = 0; bpf_map_lookup_elem(&QQ00ZZZZZZZZ, &k); return QQ01ZZZZZZZZ; }
char LICENSE[] SEC("license") = "GPL";
"""
    obj = compile_bpf(src, tmp_path / "p.bpf.o").read_bytes()
    bad = replace_names(obj, {b"QQ00ZZZZZZZZ": b"\xc3(m", b"QQ01ZZZZZZZZ": b"v\xff",
                              b"QQ02ZZZZZZZZ": b"s\xfe", b"QQ03ZZZZZZZZ": b"p\xe9"})
    (tmp_path / "bad.bpf.o").write_bytes(bad)
    o = read_input(str(tmp_path / "bad.bpf.o"))
    assert [m.name for m in o.maps] == ["\udcc3(m"]
    assert [p.name for p in o.programs] == ["p\udce9"]
    assert [(s.name, [v.name for v in s.variables]) for s in o.sections] == \
        [(".data.s\udcfe", ["v\udcff"])]


def test_bss_size_that_lies_is_refused_not_allocated(tmp_path: Path) -> None:
    """object_reader materialized .bss zeros at the size BTF (or a NOBITS
    section header) claims: 4 GiB for one bit of lie."""
    import struct

    from btfgen.elf.reader import read_input
    from btfgen.errors import ObjectError
    from tests.helpers.build import compile_bpf
    from tests.helpers.mutate import Seed

    src = "unsigned long long counter;\nint f(void) { return counter++; }\n"
    seed = Seed.from_bytes(compile_bpf(src, tmp_path / "p.bpf.o").read_bytes())
    data = bytearray(seed.data)
    datasecs = [r for r in seed.records if r.kind == 15]
    assert len(datasecs) == 1
    struct.pack_into("<I", data, seed.types_off + 4 * datasecs[0].word + 8, 0xFFFFFFFF)
    (tmp_path / "bad.bpf.o").write_bytes(data)
    with pytest.raises(ObjectError, match=r"'\.bss': DATASEC size 4294967295 is too large"):
        read_input(str(tmp_path / "bad.bpf.o"))


def test_error_lines_escape_hostile_names() -> None:
    """datasec_fixup/map_defs put raw names in their messages: a name holding an
    escape sequence reached the terminal through the CLI's error line."""
    r = run_btfgen("info", REGRESSIONS / "message-control-char.bpf.o")
    assert r.returncode == 1
    assert r.stderr.rstrip("\n").endswith(
        "section '.rodata': no ELF symbol for variable 'filter\\x7fcg'")
    assert all(ch.isprintable() for ch in r.stderr.rstrip("\n"))
