"""Histogram printing: byte for byte as bcc's table.py and libbpf-tools' trace_helpers.c."""

from __future__ import annotations

import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from btfgen.runtime.hist import (
    HistogramMethods,
    format_log2_hist,
    print_linear_hist,
    print_log2_hist,
    slot_range,
)

DATA = Path(__file__).parent / "data"

#: Slot arrays covering: nothing, one slot, leading zeros, a big spread, counts that
#: do not divide evenly into 40 stars, a wide (> 32 slots) histogram, large counts.
CASES: list[list[int]] = [
    [],
    [0, 0, 0],
    [5],
    [0, 1],
    [0, 0, 3, 10, 0, 7],
    [3, 250, 260, 185, 135, 55, 41, 20, 6, 12, 3, 12, 1],
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    [0] * 30 + [9, 0, 0, 4],
    [0] * 40 + [1, 2, 3],
    [7] * 33 + [1],
    [123456, 1, 99999, 3, 0, 0, 2],
    [0, 0, 0, 0, 17, 0, 0, 1],
]
#: Counts only the C printer's 32-bit arithmetic shows differently (wrapped star products,
#: %d of counts >= 2**31); bcc's Python integers do not wrap.
C_CASES: list[list[int]] = [[150_000_000, 3, 120_000_000], [3_000_000_000, 5, 1]]


def _bcc(kind: str, cases: list[list[int]], val_type: str, strip: bool) -> list[str]:
    """What bcc's own printers print for each case (Debian's python3 with python3-bpfcc)."""
    code = (
        "import contextlib, io, json, sys\n"
        "from bcc import table\n"
        "cases, val_type, strip, kind = json.loads(sys.stdin.read())\n"
        "fn = table._print_log2_hist if kind == 'log2' else table._print_linear_hist\n"
        "out = []\n"
        "for vals in cases:\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        fn(vals, val_type, strip)\n"
        "    out.append(buf.getvalue())\n"
        "print(json.dumps(out))\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                       input=json.dumps([cases, val_type, strip, kind]))
    if r.returncode != 0 and "No module named 'bcc'" in r.stderr:
        pytest.fail("bcc is not importable by /usr/bin/python3: install python3-bpfcc "
                    "(make bench-deps)")
    assert r.returncode == 0, r.stderr
    result: list[str] = json.loads(r.stdout)
    return result


@pytest.fixture(scope="module")
def c_printer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("hist") / "hist_printer"
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-o", str(exe),
                    str(DATA / "hist_printer.c")], check=True)
    return exe


def _ours(fn: Any, *args: Any, **kw: Any) -> str:
    buf = io.StringIO()
    fn(*args, file=buf, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("strip", [False, True])
def test_log2_matches_bcc(strip: bool) -> None:
    expected = _bcc("log2", CASES, "usecs", strip)
    for vals, want in zip(CASES, expected, strict=True):
        got = _ours(print_log2_hist, vals, "usecs", log2_base="bcc", strip_leading_zero=strip)
        assert got == want, f"slots {vals}"
    assert any(e.count("\n") > 30 for e in expected)  # the wide layout was compared


@pytest.mark.parametrize("strip", [False, True])
def test_linear_matches_bcc(strip: bool) -> None:
    expected = _bcc("linear", CASES, "kbytes", strip)
    for vals, want in zip(CASES, expected, strict=True):
        got = _ours(print_linear_hist, vals, "kbytes", strip_leading_zero=strip)
        assert got == want, f"slots {vals}"


def test_log2_matches_trace_helpers(c_printer: Path) -> None:
    for vals in CASES + C_CASES:
        want = subprocess.run([str(c_printer), "log2", "msecs", str(len(vals)),
                               *map(str, vals)], capture_output=True, text=True,
                              check=True).stdout
        got = _ours(print_log2_hist, vals, "msecs", log2_base="libbpf")
        assert got == want, f"slots {vals}"


@pytest.mark.parametrize("base,step", [(0, 1), (5, 10)])
def test_linear_matches_trace_helpers(c_printer: Path, base: int, step: int) -> None:
    for vals in CASES + C_CASES:
        want = subprocess.run([str(c_printer), "linear", "pct", str(base), str(step),
                               str(len(vals)), *map(str, vals)], capture_output=True,
                              text=True, check=True).stdout
        got = _ours(print_linear_hist, vals, "pct", base=base, step=step, style="libbpf")
        assert got == want, f"slots {vals}"


def test_conventions_differ_by_one_slot() -> None:
    # The same latencies (1, 2, 3, 5, 1000) counted in each convention print the
    # same labels, and the libbpf slots printed with bcc's labels would not.
    libbpf = [1, 2, 1, 0, 0, 0, 0, 0, 0, 1]       # slot = floor(log2(v)), 0 and 1 in slot 0
    bcc = [0, 1, 2, 1, 0, 0, 0, 0, 0, 0, 1]       # slot = bit length of v
    rows_l = [line.split(":")[0] + line.split(":")[1]
              for line in format_log2_hist(libbpf, "x", log2_base="libbpf")[1:]]
    rows_b = [line.split(":")[0] + line.split(":")[1]
              for line in format_log2_hist(bcc, "x", log2_base="bcc")[1:]]
    assert rows_l == rows_b
    assert slot_range(1, log2_base="libbpf") == (2, 3)
    assert slot_range(1, log2_base="bcc") == (0, 1)
    assert slot_range(0, log2_base="libbpf") == (0, 1)
    assert slot_range(10, log2_base="bcc") == (512, 1023)
    with pytest.raises(ValueError, match="log2_base must be 'libbpf' or 'bcc'"):
        print_log2_hist([1], log2_base="auto")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        print_log2_hist([1])  # type: ignore[call-arg]


def test_section_line() -> None:
    got = _ours(print_log2_hist, [1, 2], "usecs", log2_base="libbpf", section="pid = 7 sh")
    assert got.startswith("\npid = 7 sh\n     usecs               : count    distribution\n")


@dataclass
class _Key:
    disk: int
    slot: int


@dataclass
class _Hist:
    slots: list[int]
    comm: bytes


class _FakeMap(HistogramMethods):
    """items() as a typed map gives them (the real maps are tested live in test_tools)."""

    def __init__(self, items: list[tuple[Any, Any]]) -> None:
        self._items = items

    def items(self) -> Any:
        return iter(self._items)


def test_map_layouts() -> None:
    # slot-indexed per-CPU counts, summed
    m = _FakeMap([(0, [0, 0]), (1, [1, 2]), (2, [0, 5])])
    assert m.log2_hist() == {None: [0, 3, 5]}
    # bcc keyed: struct {disk; slot}
    m = _FakeMap([(_Key(8, 1), 4), (_Key(9, 2), 1), (_Key(8, 3), 2)])
    assert m.log2_hist(sectioned=True) == {8: [0, 4, 0, 2], 9: [0, 0, 1]}
    assert m.log2_hist() == {None: [0, 4, 1, 2]}
    assert m.log2_hist(sectioned=True, bucket_fn=lambda d: "all") == {"all": [0, 4, 1, 2]}
    buf = io.StringIO()
    m.print_log2_hist("usecs", log2_base="bcc", section_header="disk",
                      section_print_fn=lambda d: f"sd{d}", bucket_sort_fn=sorted, file=buf)
    text = buf.getvalue()
    assert text.index("\ndisk = sd8\n") < text.index("\ndisk = sd9\n")
    # libbpf-tools struct hist values keyed by pid, per-CPU lists too
    m = _FakeMap([(10, _Hist([1, 0, 2], b"a")), (11, [_Hist([0, 1], b"b"), _Hist([0, 1], b"b")])])
    assert m.log2_hist(sectioned=True) == {10: [1, 0, 2], 11: [0, 2]}
    buf = io.StringIO()
    m.print_log2_hist("usecs", log2_base="libbpf", section_header="pid", file=buf)
    assert buf.getvalue() == (
        "\npid = 10\n" + "".join(x + "\n" for x in format_log2_hist([1, 0, 2], "usecs",
                                                                    log2_base="libbpf"))
        + "\npid = 11\n" + "".join(x + "\n" for x in format_log2_hist([0, 2], "usecs",
                                                                      log2_base="libbpf")))
    with pytest.raises(TypeError, match="no field 'buckets'"):
        m.log2_hist(slots_field="buckets")



MAPS_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct hkey { __u32 disk; __u32 slot; };
struct hist { __u32 slots[26]; char comm[16]; };
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 40);
         __type(key, __u32); __type(value, __u64); } dist SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, struct hkey); __type(value, __u64); } bydisk SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64);
         __type(key, __u32); __type(value, struct hist); } hists SEC(".maps");
SEC("tp/syscalls/sys_enter_getppid") int nop(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.live
def test_real_maps_print_as_the_printers(tmp_path: Path, c_printer: Path) -> None:
    from tests.helpers.build import compile_bpf
    from tests.helpers.gen import generate
    from tests.helpers.runtime_zoo import load_or_skip

    obj = compile_bpf(MAPS_SRC, tmp_path / "hists.bpf.o")
    mod = generate(obj, tmp_path / "hists_skel.py")
    skel = load_or_skip(mod.HistsSkel.open_and_load)
    try:
        m = skel.maps
        ncpu = len(m.dist[0])
        # per-CPU counts, one slot per key: the sum over CPUs is printed
        want = [0, 3, 10, 0, 7] + [0] * 35
        for slot, n in enumerate(want):
            m.dist[slot] = [n // ncpu + (n % ncpu if c == 0 else 0) for c in range(ncpu)]
        assert m.dist.log2_hist() == {None: want}
        buf = io.StringIO()
        m.dist.print_log2_hist("usecs", log2_base="bcc", file=buf)
        assert buf.getvalue() == _bcc("log2", [want], "usecs", False)[0]
        m.dist.clear()  # interval output: zeroed
        assert m.dist.log2_hist() == {None: [0] * 40}

        # bcc's keyed histograms: struct {disk, slot} -> count, one section per disk
        for disk, slot, n in [(8, 1, 4), (8, 3, 2), (16, 2, 9)]:
            m.bydisk[mod.Hkey(disk=disk, slot=slot)] = n
        buf = io.StringIO()
        m.bydisk.print_log2_hist("usecs", log2_base="bcc", section_header="disk",
                                 section_print_fn=lambda d: f"sd{d}", bucket_sort_fn=sorted,
                                 file=buf)
        b8, b16 = _bcc("log2", [[0, 4, 0, 2], [0, 0, 9]], "usecs", False)
        assert buf.getvalue() == "\ndisk = sd8\n" + b8 + "\ndisk = sd16\n" + b16

        # libbpf-tools' struct hist per pid, as runqlat -P prints it
        m.hists[42] = mod.Hist(slots=[1, 5, 0, 2] + [0] * 22, comm=b"sh")
        buf = io.StringIO()
        m.hists.print_log2_hist("msecs", log2_base="libbpf", section_header="pid", file=buf)
        want_c = subprocess.run([str(c_printer), "log2", "msecs", "26", "1", "5", "0", "2"],
                                capture_output=True, text=True, check=True).stdout
        assert buf.getvalue() == "\npid = 42\n" + want_c
        m.hists.clear()
        assert m.hists.log2_hist() == {}
    finally:
        skel.destroy()
