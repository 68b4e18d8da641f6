"""Mutation fuzzing of real objects: the 61 libbpf-tools objects, objects
compiled here (every BTF kind a C program can produce) and raw BTF, mutated by
:mod:`mutate` (bit flips, truncation, header fields that lie, self and
out-of-range type ids, reference loops, kind/vlen garbage, lying sizes and
counts, hostile string bytes, damaged ELF sections and headers).

Each mutant goes through every stage in a worker process bounded to 1 GiB of
address space and 10 s (see :mod:`fuzz.worker`): it must end in output or a
BtfgenError.  The run is bounded (``BTFGEN_FUZZ_SECONDS``, default 45) and
reproducible (``BTFGEN_FUZZ_SEED``, default 7); findings are written to a
temporary directory named in the failure, to be kept in tests/fuzz/regressions/.
The long run is ``benchmarks/fuzz_long.py``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzz.harness import Worker, fuzz_loop, save_findings
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import compile_bpf
from tests.helpers.mutate import Seed, mutate, replace_names
from tests.helpers.runtime_zoo import ZOO_SRC

SECONDS = float(os.environ.get("BTFGEN_FUZZ_SECONDS", "45"))

SEED = int(os.environ.get("BTFGEN_FUZZ_SEED", "7"))

#: Every BTF kind clang emits for a BPF program (compiled little- and big-endian):
#: bitfields (signed too), unions, anonymous members, packed and aligned layouts,
#: enums, enum64, float, arrays, function pointers, type tags, decl tags, static
#: locals, custom sections.
KINDS_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum colour { RED = -1, GREEN = 7 };
enum big { HUGE = 0xffffffffffULL };
struct inner { __u8 a; __u64 b __attribute__((aligned(16))); };
struct packed_rec { __u8 x; __u32 y; } __attribute__((packed));
typedef int (*cb_t)(void *, long);
struct kitchen {
	int s3 : 3;
	unsigned u5 : 5;
	_Bool flag;
	union { __u32 word; struct { __u16 lo, hi; }; };
	enum colour c;
	enum big b;
	float f;
	double d;
	char name[12];
	__u32 grid[2][3];
	struct inner in;
	struct packed_rec pr;
	cb_t cb;
	int __attribute__((btf_type_tag("user"))) *tagged;
	__u8 tail[];
} __attribute__((btf_decl_tag("kitchen")));

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, struct inner);
         __type(value, struct kitchen); } kmap SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } ring SEC(".maps");
struct kitchen glob;
const volatile struct packed_rec ro = { 1, 2 };
__u64 custom SEC(".data.custom") = 3;

SEC("kprobe/do_nanosleep")
int probe(void *ctx)
{
	static __u32 calls;
	struct inner k = {};
	calls++;
	bpf_map_update_elem(&kmap, &k, &glob, BPF_ANY);
	bpf_ringbuf_output(&ring, &glob, sizeof(glob), 0);
	return ro.x + custom;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _raw_seed() -> bytes:
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    c = b.int_("char", 1, signed=True)
    arr = b.array(c, i, 8)
    e = b.enum64("e64", 8, [("A", 1), ("B", -1)], signed=True)
    s = b.struct("rec", 24, [("x", i, 0), ("bits", i, 32, 5), ("name", arr, 40),
                             ("e", e, 128)], kflag=True)
    u = b.union("u", 8, [("r", b.ptr(s), 0), ("i", i, 0)])
    b.typedef("rec_t", s)
    b.typedef("u_t", u)
    b.func("f", b.func_proto(i, [("a", b.ptr(s)), ("", 0)]))
    return b.build()


@pytest.fixture(scope="module")
def seeds(corpus_objects: list[Path], tmp_path_factory: pytest.TempPathFactory
          ) -> list[tuple[str, Seed]]:
    d = tmp_path_factory.mktemp("fuzz_seeds")
    compiled = [compile_bpf(ZOO_SRC, d / "zoo.bpf.o"),
                compile_bpf(KINDS_SRC, d / "kinds.bpf.o"),
                compile_bpf(KINDS_SRC, d / "kinds19.bpf.o", clang="clang-19"),
                compile_bpf(KINDS_SRC, d / "kinds_be.bpf.o", target="bpfeb")]
    out = [(p.name, Seed.from_bytes(p.read_bytes())) for p in [*compiled, *corpus_objects]]
    out.append(("raw.btf", Seed.from_bytes(_raw_seed())))
    return out


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker(mem_mb=1024, timeout_s=10) as w:
        yield w


@pytest.mark.slow
def test_seeds_are_indexed_and_pass(seeds: list[tuple[str, Seed]], worker: Worker) -> None:
    """The engine finds every seed's BTF records; unmutated seeds give output."""
    for name, seed in seeds:
        assert seed.records, name
        assert seed.type_count > 2, name
    for name, seed in seeds[:5] + seeds[-1:]:
        v = worker.run(seed.data)
        assert v["status"] == "ok" and not v["errors"], (name, v)
        assert "module" in v, name


def test_mutations_are_reproducible(seeds: list[tuple[str, Seed]]) -> None:
    name, seed = seeds[1]
    a = [mutate(seed, random.Random(3)) for _ in range(5)]
    b = [mutate(seed, random.Random(3)) for _ in range(5)]
    assert a == b
    assert all(data != seed.data for data, _ in a)


def test_replace_names_keeps_offsets() -> None:
    data = b"\0QQ01ZZZZ\0other\0QQ02ZZZZ\0"
    out = replace_names(data, {b"QQ01ZZZZ": b"a'b", b"QQ02ZZZZ": b"\xff"})
    assert len(out) == len(data)
    assert out.split(b"\0")[1] == b"a'b" and b"other" in out
    with pytest.raises(ValueError):
        replace_names(data, {b"QQ01ZZZZ": b"much too long"})


@pytest.mark.slow
def test_mutation_fuzz_bounded_run(seeds: list[tuple[str, Seed]], worker: Worker,
                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    stats = fuzz_loop(worker, seeds, random.Random(SEED), SECONDS)
    print(f"\nmutation fuzz (seed {SEED}):\n{stats.report()}")
    # the run must actually reach every stage, not stop at the header checks
    assert stats.inputs >= 100
    assert stats.verdicts["ok"] >= stats.inputs // 10, stats.report()
    assert stats.modules >= stats.inputs // 10, stats.report()
    new = [f for f in stats.findings if f.new]
    if new:
        saved = save_findings(new, tmp_path_factory.mktemp("findings"))
        pytest.fail(f"{len(new)} findings (inputs in {saved[0].parent}):\n"
                    + "\n".join(f.summary() + "\n" + f.verdict.get("trace", "")
                                 for f in new[:3]))
