"""The compiled perf ring drain, batches, exact loss accounting and wakeup batching.

A program counts the outputs it attempts and the ones the kernel accepts, and
derives every field of its record (bitfields, a nested struct, arrays) from a
sequence number, so each received record and the loss totals can be checked
exactly.  Live in the kernel (root); skips only when the kernel refuses BPF.
"""

from __future__ import annotations

import dataclasses
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import drain, perf, records_fast
from btfgen.runtime.batch import c_type_of
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import load
from tests.helpers.plain_record import PLAIN_C, plain_expected
from tests.helpers.runtime_zoo import load_or_skip

pytestmark = pytest.mark.live

SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner { __u16 a; __u16 b; };
struct rec {
	__u64 seq;
	__u32 pid;
	__u32 f4 : 4;
	__u32 f12 : 12;
	__s32 s7 : 7;
	char tag[8];
	__u16 arr[3];
	struct inner in;
	__s64 neg;
};

@PLAIN@

const volatile __u32 target_tgid = 0;
__u64 attempts = 0;
__u64 successes = 0;

struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } plain_events SEC(".maps");
/* plain records, every fourth one (seq % 4 == 1) without its last 8 bytes */
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } mixed_events SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int emit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct rec r = {};
	if ((id >> 32) != target_tgid)
		return 0;
	__u64 seq = __sync_fetch_and_add(&attempts, 1);
	r.seq = seq;
	r.pid = id >> 32;
	r.f4 = seq;
	r.f12 = seq * 3;
	r.s7 = (__s32)(seq % 128) - 64;
	r.tag[0] = 'a' + seq % 26;
	r.tag[1] = 'q';
	r.arr[0] = seq; r.arr[1] = seq + 1; r.arr[2] = seq + 2;
	r.in.a = seq * 7; r.in.b = ~seq;
	r.neg = -(__s64)seq;
	if (bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &r, sizeof(r)) == 0)
		__sync_fetch_and_add(&successes, 1);
	struct plain p = {};
	fill_plain(&p, seq);
	bpf_perf_event_output(ctx, &plain_events, BPF_F_CURRENT_CPU, &p, sizeof(p));
	__u64 mixed_size = seq % 4 == 1 ? sizeof(p) - 8 : sizeof(p);
	bpf_perf_event_output(ctx, &mixed_events, BPF_F_CURRENT_CPU, &p, mixed_size);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
""".replace("@PLAIN@", PLAIN_C)

PID = os.getpid()


def expected(seq: int) -> dict[str, Any]:
    """Every field the program writes for ``seq``."""
    return {"seq": seq, "pid": PID, "f4": seq & 0xF, "f12": (seq * 3) & 0xFFF,
            "s7": seq % 128 - 64, "tag": bytes([97 + seq % 26]) + b"q",
            "arr": [seq & 0xFFFF, (seq + 1) & 0xFFFF, (seq + 2) & 0xFFFF],
            "a": (seq * 7) & 0xFFFF, "b": ~seq & 0xFFFF, "neg": -seq}


def fields(r: Any) -> dict[str, Any]:
    """The same fields from a generated record."""
    return {"seq": r.seq, "pid": r.pid, "f4": r.f4, "f12": r.f12, "s7": r.s7, "tag": r.tag,
            "arr": list(r.arr), "a": r.in_.a if hasattr(r, "in_") else getattr(r, "in").a,
            "b": r.in_.b if hasattr(r, "in_") else getattr(r, "in").b, "neg": r.neg}


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType]:
    """The compiled program and its generated module (skips if the kernel refuses BPF)."""
    d = tmp_path_factory.mktemp("drain")
    obj = compile_bpf(SRC, d / "drainprog.bpf.o")
    run_btfgen("gen", obj, "-o", d / "drainprog_skel.py", check=True)
    mod = load(d / "drainprog_skel.py")

    def probe() -> None:
        mod.DrainprogSkel.open_and_load().destroy()

    load_or_skip(probe)
    return d, mod


@pytest.fixture
def skel(gen: tuple[Path, ModuleType]) -> Iterator[Any]:
    s = gen[1].DrainprogSkel.open()
    s.rodata.target_tgid = PID
    s.load()
    s.attach()
    yield s
    s.destroy()


def trigger(n: int, cpu: int | None = None) -> None:
    """n getppid() calls, on one CPU when given (so every record lands in one ring)."""
    old = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        for _ in range(n):
            os.getppid()
    finally:
        os.sched_setaffinity(0, old)


CPU = min(os.sched_getaffinity(0))


def test_extension_is_built() -> None:
    assert drain.AVAILABLE, f"compiled drain unavailable: {drain.UNAVAILABLE_REASON}"
    assert records_fast._ext is not None, "btfgen.runtime._records is not built"


def test_plain_records_are_built_in_bulk_and_equal_from_bytes(skel: Any) -> None:
    cls = type(skel).__module__ and sys.modules[type(skel).__module__].Plain
    assert records_fast.bulk_decoder(cls) is not None  # every field plain: the C path
    assert records_fast.bulk_decoder(sys.modules[type(skel).__module__].Rec) is None  # bitfields
    got: list[Any] = []
    pb = skel.maps.plain_events.open_perf_buffer(lambda cpu, r: got.append(r))
    assert pb._bulk is not None
    trigger(1000, CPU)
    while pb.poll(50):
        pass
    names = [f.name for f in dataclasses.fields(cls)]
    assert [{n: getattr(r, n) for n in names} for r in got] == [plain_expected(i)
                                                                 for i in range(1000)]
    assert all(type(r) is cls and type(r.odd) is bool and type(r.half) is float for r in got)
    pb2 = skel.maps.plain_events.open_perf_buffer(page_count=8)
    trigger(50, CPU)
    recs = pb2.read_batch(50).records()
    assert recs == [cls.from_bytes(cls(**plain_expected(i)).to_bytes()) for i in range(1000, 1050)]


def test_bulk_builders_share_repeated_values_and_stay_exact(gen: tuple[Path, ModuleType]) -> None:
    """The C builders reuse the last value of a field when its bytes repeat
    (pids, cpus, comms): runs of equal and changing values, a name changing
    only after its NUL, and negative/positive flips decode as from_bytes does."""
    cls = gen[1].Plain
    bulk = records_fast.bulk_decoder(cls)
    assert bulk is not None
    base = plain_expected(7)
    variants = [base, base, {**base, "u32": 8}, base, {**base, "name": b"n7y"},
                {**base, "name": b"n7"}, {**base, "s8": -base["s8"], "neg": 5},
                {**base, "half": -0.0}, {**base, "half": 0.0}, base]
    data = b"".join(cls(**v).to_bytes() for v in variants)
    # bytes after the NUL differ but must not matter: "n7" then "n7\0zz"
    found = c_type_of(cls)
    assert found is not None
    name_at = dict(found[1].fields)["name"].offset
    tail = bytearray(cls(**base).to_bytes())
    tail[name_at:name_at + 5] = b"n7\0zz"
    data += bytes(tail)
    count = len(variants) + 1
    size = cls.SIZE
    want = [cls.from_bytes(data, i * size) for i in range(count)]
    assert want[-1].name == b"n7"
    assert bulk.build(data, size, 0, count) == want
    got: list[tuple[int, Any]] = []
    bulk.deliver(data, size, 0, count, lambda cpu, r: got.append((cpu, r)), 3, _never)
    assert got == [(3, w) for w in want]
    assert [type(r.half) for _, r in got] == [float] * count
    assert str(got[7][1].half) == "-0.0" and str(got[8][1].half) == "0.0"
    # callback(record) when cpu is None: the ring-buffer shape
    plain: list[Any] = []
    bulk.deliver(data, size, size, 2, plain.append, None, _never)
    assert plain == want[1:3]


def _never(exc: BaseException) -> None:
    raise AssertionError(f"unexpected callback failure: {exc!r}")


def test_bulk_deliver_reuses_only_records_nobody_kept(gen: tuple[Path, ModuleType]) -> None:
    """A record the callback let go of is refilled for the next one; a record it
    kept is never touched again."""
    cls = gen[1].Plain
    bulk = records_fast.bulk_decoder(cls)
    assert bulk is not None
    data = b"".join(cls(**plain_expected(i)).to_bytes() for i in range(40))
    seen: list[dict[str, Any]] = []
    kept: list[Any] = []
    ids: set[int] = set()

    def callback(cpu: int, rec: Any) -> None:
        seen.append(plain_fields(rec))
        ids.add(id(rec))
        if rec.seq % 5 == 0:
            kept.append(rec)

    bulk.deliver(data, cls.SIZE, 0, 40, callback, 0, _never)
    assert seen == [plain_expected(i) for i in range(40)]
    assert [plain_fields(r) for r in kept] == [plain_expected(i) for i in range(0, 40, 5)]
    assert len(ids) <= 2 + len(kept)  # the records let go of were reused


def test_bulk_deliver_passes_callback_exceptions_on_and_goes_on(
        gen: tuple[Path, ModuleType]) -> None:
    cls = gen[1].Plain
    bulk = records_fast.bulk_decoder(cls)
    assert bulk is not None
    data = b"".join(cls(**plain_expected(i)).to_bytes() for i in range(6))
    seen: list[int] = []
    failures: list[BaseException] = []

    def callback(cpu: int, rec: Any) -> None:
        seen.append(rec.seq)
        if rec.seq % 2:
            raise KeyError(rec.seq)

    bulk.deliver(data, cls.SIZE, 0, 6, callback, 0, failures.append)
    assert seen == [0, 1, 2, 3, 4, 5]
    assert [type(e) for e in failures] == [KeyError] * 3
    assert [e.args[0] for e in failures] == [1, 3, 5]
    assert all(e.__traceback__ is not None for e in failures)

    def fail_stops(exc: BaseException) -> None:
        raise RuntimeError("stop") from exc

    seen.clear()
    with pytest.raises(RuntimeError, match="stop"):
        bulk.deliver(data, cls.SIZE, 0, 6, callback, 0, fail_stops)
    assert seen == [0, 1]
    with pytest.raises(ValueError, match="outside the buffer"):
        bulk.deliver(data, cls.SIZE, cls.SIZE, 6, callback, 0, failures.append)
    with pytest.raises(ValueError, match="outside the buffer"):
        bulk.build(data, cls.SIZE, len(data) + 1, 0)


def test_drained_callback_delivers_every_record_exactly(skel: Any) -> None:
    got: list[tuple[int, Any]] = []
    pb = skel.maps.events.open_perf_buffer(lambda cpu, r: got.append((cpu, r)))
    assert pb.drained
    trigger(3000, CPU)  # several drains' worth on one ring (64 pages hold ~4000)
    while pb.poll(50):
        pass
    assert [r.seq for _, r in got] == list(range(3000))
    assert all(cpu == CPU for cpu, _ in got)
    assert all(fields(r) == expected(r.seq) for _, r in got)
    assert pb.received == 3000 and pb.lost == 0


def plain_fields(r: Any) -> dict[str, Any]:
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


def test_direct_path_across_many_ring_wraps(skel: Any) -> None:
    """Plain records to a callback are built straight from the ring: a one-page
    ring wraps ~35 times, records split by the wrap included."""
    got: list[Any] = []
    pb = skel.maps.plain_events.open_perf_buffer(lambda cpu, r: got.append(r), page_count=1)
    assert pb._bulk is not None
    for _ in range(60):
        trigger(40, CPU)  # 40 x 72-byte records: fits in a 4096-byte ring
        assert pb.poll(0) == 40
    assert [plain_fields(r) for r in got] == [plain_expected(i) for i in range(2400)]
    assert pb.received == 2400 and pb.lost == 0
    assert pb._rings is not None and pb._rings.out.count == 0  # the copying drain never ran


def test_direct_path_counts_losses_exactly(skel: Any) -> None:
    got: list[int] = []
    lost_reports: list[int] = []
    pb = skel.maps.plain_events.open_perf_buffer(lambda cpu, r: got.append(r.seq),
                                                 lambda cpu, n: lost_reports.append(n),
                                                 page_count=1)
    trigger(500, CPU)
    while pb.consume():
        pass
    assert 0 < len(got) < 500 and got == sorted(got)
    assert pb.received == len(got) and pb.received + pb.lost == 500  # the kernel's counter
    assert sum(lost_reports) == pb.lost  # told by the consume() that found nothing


def test_direct_path_poll_from_the_callback_delivers_each_record_once(skel: Any) -> None:
    got: list[int] = []
    pb: Any = None

    def callback(cpu: int, r: Any) -> None:
        got.append(r.seq)
        if r.seq % 100 == 0:
            pb.poll(0)  # takes the rest of the ring before this callback returns

    pb = skel.maps.plain_events.open_perf_buffer(callback)
    trigger(300, CPU)
    pb.consume()
    assert got == list(range(300))
    assert pb.received == 300


def test_direct_path_callback_exceptions(skel: Any) -> None:
    got: list[int] = []

    def callback(cpu: int, r: Any) -> None:
        got.append(r.seq)
        if r.seq % 3 == 1:
            raise LookupError(r.seq)

    pb = skel.maps.plain_events.open_perf_buffer(callback)
    trigger(30, CPU)
    with pytest.raises(LookupError) as exc:
        pb.consume()
    assert exc.value.args == (1,) and got == list(range(30))
    assert "9 more callback exceptions" in "".join(getattr(exc.value, "__notes__", []))
    trigger(3, CPU)  # still usable
    with pytest.raises(LookupError):
        pb.consume()
    assert got == list(range(33))


def test_direct_path_hands_short_samples_to_the_drain(skel: Any, gen: tuple[Path, ModuleType],
                                                      ) -> None:
    """A sample shorter than the record stops the direct walk; the drain takes
    the rest (here: decoding short ones zero-padded, min_size allowing)."""
    from btfgen.runtime.codec import RecordCodec

    cls = gen[1].Plain
    got: list[Any] = []
    mixed = skel.maps.mixed_events.with_record(RecordCodec(cls, min_size=cls.SIZE - 8))
    pb = mixed.open_perf_buffer(lambda cpu, r: got.append(r))
    assert pb._bulk is not None
    trigger(202, CPU)
    while pb.poll(50):
        pass
    want = [plain_expected(i) if i % 4 != 1 else {**plain_expected(i), "half": 0.0}
            for i in range(202)]
    assert [plain_fields(r) for r in got] == want
    assert pb.received == 202


@pytest.mark.parametrize("drained", [True, False], ids=["drain", "libbpf-callback"])
def test_bounded_batches_leave_the_rest_for_the_next(skel: Any, drained: bool) -> None:
    pb = skel.maps.plain_events.open_perf_buffer(drain=drained)
    assert pb.drained == drained
    trigger(1000, CPU)
    sizes: list[int] = []
    seqs: list[int] = []
    while len(batch := pb.read_batch(0, max_records=300)):
        sizes.append(len(batch))
        seqs += [int(s) for s in batch.array()["seq"]]
    assert sizes == [300, 300, 300, 100] and seqs == list(range(1000))
    trigger(10, CPU)
    assert len(pb.read_batch(0, max_records=10**6)) == 10  # more than a drain can take
    with pytest.raises(ValueError, match="max_records"):
        pb.read_batch(0, max_records=0)


def test_batch_takes_one_drain_and_short_samples_decode_zero_padded(
        skel: Any, gen: tuple[Path, ModuleType]) -> None:
    """read_batch() takes at most one drain buffer's worth: when it fills, the
    rest waits in the ring for the next call, in order.  Samples shorter than
    the record (variable-length, down to min_size) decode zero-padded in
    records() and array() (they were rejected after being consumed)."""
    from btfgen.runtime.codec import RecordCodec

    cls = gen[1].Plain
    mixed = skel.maps.mixed_events.with_record(RecordCodec(cls, min_size=cls.SIZE - 8))
    pb = mixed.open_perf_buffer()
    assert pb._rings is not None
    pb._rings.out.data_size = 10 * cls.SIZE  # room for 10 records per drain
    trigger(102, CPU)
    lens: list[int] = []
    recs: list[Any] = []
    sizes: list[int] = []
    seqs: list[int] = []
    while len(batch := pb.read_batch(50 if not lens else 0)):
        lens.append(len(batch))
        assert batch.segments == [(CPU, len(batch))]
        recs += batch.records()
        seqs += [int(s) for s in batch.array()["seq"]]
        sizes += batch.sizes or [cls.SIZE + 4] * len(batch)
    assert lens == [10] * 10 + [2] and pb.received == 102
    # raw sizes as the kernel writes them: the sample plus padding to 8 bytes with its
    # 4-byte size field (56 -> 60, 48 -> 52)
    assert sizes == [cls.SIZE - 4 if i % 4 == 1 else cls.SIZE + 4 for i in range(102)]
    assert seqs == list(range(102))
    want = [dict(plain_expected(i), half=0.0) if i % 4 == 1 else plain_expected(i)
            for i in range(102)]
    assert [plain_fields(r) for r in recs] == want


def test_batch_records_array_and_bitfield_columns(skel: Any) -> None:
    import numpy as np

    pb = skel.maps.events.open_perf_buffer(page_count=16)
    trigger(500, CPU)
    batch = pb.read_batch(50)
    assert len(batch) == 500 and batch.segments == [(CPU, 500)]
    recs = batch.records()
    assert [fields(r) for r in recs] == [expected(i) for i in range(500)]
    arr = batch.array()
    assert arr.dtype.itemsize == 48
    assert arr["seq"].tolist() == list(range(500))
    assert arr["neg"].tolist() == [-i for i in range(500)]
    assert arr["tag"].tolist() == [expected(i)["tag"] for i in range(500)]
    assert arr["arr"].tolist() == [expected(i)["arr"] for i in range(500)]
    assert batch.column("in.a").tolist() == [expected(i)["a"] for i in range(500)]
    for name in ("f4", "f12", "s7"):  # bitfields: derived columns
        assert batch.column(name).tolist() == [expected(i)[name] for i in range(500)]
    assert batch.cpu_array().tolist() == [CPU] * 500
    assert np.all(batch.columns()["pid"] == PID)
    assert pb.received == 500 and len(pb.read_batch(0)) == 0


@pytest.mark.parametrize("counters", [True, False], ids=["kernel-counters", "loss-records"])
@pytest.mark.parametrize("drained", [True, False], ids=["drain", "libbpf-callback"])
def test_loss_accounting_is_exact_with_a_tiny_buffer(skel: Any, drained: bool, counters: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """With the kernel's loss counters (Linux 6.0+), ``lost`` is exact as soon as
    the rings are drained, even when no sample follows the losses on that CPU;
    with loss records only (older kernels), once a later sample carries them."""
    if not counters:
        monkeypatch.setattr(perf, "PERF_FORMAT_LOST", 0)  # as on a kernel without them
    got: list[int] = []
    lost_reports: list[tuple[int, int]] = []
    pb = skel.maps.events.open_perf_buffer(lambda cpu, r: got.append(r.seq),
                                           lambda cpu, n: lost_reports.append((cpu, n)),
                                           page_count=1, drain=drained)
    assert pb.drained == drained
    assert (pb._counter_fds is not None) == counters
    trigger(1000, CPU)  # one page holds ~60 records: most outputs fail
    while pb.consume():
        pass
    attempts, successes = skel.bss.attempts, skel.bss.successes
    assert attempts == 1000 and 0 < successes < attempts
    assert pb.received == len(got) == successes
    if counters:  # the last consume() found nothing and told lost_callback
        assert pb.received + pb.lost == attempts
        assert sum(n for _, n in lost_reports) == pb.lost
    else:
        assert pb.lost == 0 and lost_reports == []  # the kernel has not said yet
    trigger(1, CPU)  # an accepted output after the losses: the kernel's loss record
    while pb.consume():
        pass
    assert skel.bss.attempts == 1001 and pb.received == len(got) == successes + 1
    assert pb.received + pb.lost == 1001
    assert sum(n for _, n in lost_reports) == pb.lost and {c for c, _ in lost_reports} == {CPU}
    assert got == sorted(got) and got[-1] == 1000


def test_wakeup_events_batch_wakeups_and_poll_timeout_bounds_latency(skel: Any) -> None:
    got: list[int] = []
    pb = skel.maps.events.open_perf_buffer(lambda cpu, r: got.append(r.seq), cpus=[CPU],
                                           wakeup_events=64)
    trigger(10, CPU)
    assert select.select([pb.fileno()], [], [], 0)[0] == []  # 10 < 64: no wakeup
    assert pb.poll(30) == 10 and got == list(range(10))  # the timeout drains them
    trigger(64, CPU)
    assert select.select([pb.fileno()], [], [], 1)[0] == [pb.fileno()]  # the 64th wakes
    assert pb.poll(0) == 64


def test_wakeup_bytes_watermark(skel: Any) -> None:
    pb = skel.maps.events.open_perf_buffer(cpus=[CPU], wakeup_bytes=2048)
    trigger(20, CPU)  # 20 x 64-byte samples: below the watermark
    assert select.select([pb.fileno()], [], [], 0)[0] == []
    trigger(20, CPU)
    assert select.select([pb.fileno()], [], [], 1)[0] == [pb.fileno()]
    assert len(pb.read_batch(0)) == 40


FALLBACK = """
import os, sys
sys.path.insert(0, {d!r})
from btfgen.runtime import drain, records_fast
import drainprog_skel as m
assert not drain.AVAILABLE and "BTFGEN_NO_DRAIN" in drain.UNAVAILABLE_REASON
s = m.DrainprogSkel.open(); s.rodata.target_tgid = os.getpid(); s.load(); s.attach()
got = []
pb = s.maps.events.open_perf_buffer(lambda cpu, r: got.append(r.seq))
assert not pb.drained
for _ in range(300): os.getppid()
pb.poll(50); pb.consume()
assert got == list(range(300)), got[:5]
for _ in range(200): os.getppid()
b = pb.read_batch(50)
assert [r.seq for r in b.records()] == list(range(300, 500))
assert b.array()["seq"].tolist() == list(range(300, 500))
s.destroy()
print("ok")
"""


def test_fallback_without_the_extension(gen: tuple[Path, ModuleType]) -> None:
    d, _ = gen
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(FALLBACK.format(d=str(d)))],
                       capture_output=True, text=True, env={**os.environ, "BTFGEN_NO_DRAIN": "1"})
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]


def test_batches_kept_by_the_caller_are_not_overwritten(skel: Any) -> None:
    pb = skel.maps.events.open_perf_buffer(page_count=4)
    kept, arrays, columns, views, slices = [], [], [], [], []
    for i in range(14):  # more drains than pooled buffers, some batches held
        trigger(10, CPU)
        batch = pb.read_batch(0)
        if i in (1, 2, 6):
            kept.append(batch)
        if i == 4:
            arrays.append(batch.array())
        if i == 8:
            columns.append(batch.array()["seq"])  # a view of an array slicing the buffer's
        if i == 10:
            views.append(batch.data)
        if i == 12:
            slices.append(batch.array()[3:5])
        del batch
    assert [[r.seq for r in b.records()] for b in kept] == [
        list(range(10, 20)), list(range(20, 30)), list(range(60, 70))]
    assert arrays[0]["seq"].tolist() == list(range(40, 50))
    assert columns[0].tolist() == list(range(80, 90))
    assert [int.from_bytes(views[0][off:off + 8], "little")
            for off in range(0, len(views[0]), len(views[0]) // 10)] == list(range(100, 110))
    assert slices[0]["seq"].tolist() == [123, 124]


def test_batch_buffers_are_reused_once_dropped(skel: Any) -> None:
    """A drain writes where the last one did once nothing of that batch is left,
    and a batch's array is a read-only slice of the buffer's own array."""
    pb = skel.maps.events.open_perf_buffer(page_count=4)
    rings = pb._rings
    trigger(5, CPU)
    batch = pb.read_batch(0)
    first = rings.current
    arr = batch.array()
    assert batch.source is first and arr.base is next(iter(first.arrays.values()))
    assert not arr.flags.writeable and arr["seq"].tolist() == list(range(5))
    with pytest.raises(ValueError):
        arr.flags.writeable = True
    del batch, arr
    for i in range(1, 6):
        trigger(5, CPU)
        batch = pb.read_batch(0)
        assert batch.array()["seq"].tolist() == list(range(5 * i, 5 * i + 5))
        del batch
        assert rings.current is first and len(rings._pool) == 1
    trigger(5, CPU)
    held = pb.read_batch(0).array()
    trigger(5, CPU)
    assert pb.read_batch(0).array()["seq"].tolist() == list(range(35, 40))
    assert rings.current is not first and held["seq"].tolist() == list(range(30, 35))
