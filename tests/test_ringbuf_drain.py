"""BPF ring buffers (BPF_MAP_TYPE_RINGBUF) read by the compiled drain.

A program derives every field of its records from a sequence number and counts
what the kernel accepted, so each received record and the totals can be
checked exactly: plain records (built in C), bitfield records (some reserved
and then discarded), records of varying length (short ones, trailing bytes) and
a one-page ring that wraps and fills.  Live in the kernel (root); skips only
when the kernel refuses BPF.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import drain
from btfgen.runtime.codec import RecordCodec
from btfgen.runtime.reader import WithPayload
from btfgen.runtime.ringbuf import RingBuf
from tests.helpers.bpf_leaks import fd_ids, still_alive
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import load
from tests.helpers.plain_record import PLAIN_C, PLAIN_SIZE, plain_expected
from tests.helpers.runtime_zoo import load_or_skip

pytestmark = pytest.mark.live

SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

@PLAIN@

/* bitfields: decoded by from_bytes */
struct rec {
	__u64 seq;
	__u32 f4 : 4;
	__u32 f12 : 12;
	__s32 s7 : 7;
	__u16 arr[3];
	__s64 neg;
};

struct big { struct plain p; __u8 tail[8]; };

const volatile __u32 target_tgid = 0;
__u64 attempts = 0;
__u64 plain_ok = 0;
__u64 rec_kept = 0;
__u64 small_ok = 0;

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 18); } plain_rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 18); } rec_rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 18); } mixed_rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } small_rb SEC(".maps");
/* plain records, every fifth one reserved, then discarded */
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 18); } pdisc_rb SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int emit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) != target_tgid)
		return 0;
	__u64 seq = __sync_fetch_and_add(&attempts, 1);
	struct big b = {};
	struct plain *p = &b.p;
	fill_plain(p, seq);
	if (bpf_ringbuf_output(&plain_rb, p, sizeof(*p), 0) == 0)
		__sync_fetch_and_add(&plain_ok, 1);
	if (bpf_ringbuf_output(&small_rb, p, sizeof(*p), 0) == 0)
		__sync_fetch_and_add(&small_ok, 1);
	struct plain *pd = bpf_ringbuf_reserve(&pdisc_rb, sizeof(*pd), 0);
	if (pd) {
		__builtin_memcpy(pd, p, sizeof(*pd));
		if (seq % 5 == 3)
			bpf_ringbuf_discard(pd, 0);
		else
			bpf_ringbuf_submit(pd, 0);
	}

	/* every fifth record is reserved, then discarded */
	struct rec *r = bpf_ringbuf_reserve(&rec_rb, sizeof(*r), 0);
	if (r) {
		r->seq = seq;
		r->f4 = seq;
		r->f12 = seq * 3;
		r->s7 = (__s32)(seq % 128) - 64;
		r->arr[0] = seq; r->arr[1] = seq + 1; r->arr[2] = seq + 2;
		r->neg = -(__s64)seq;
		if (seq % 5 == 3) {
			bpf_ringbuf_discard(r, 0);
		} else {
			bpf_ringbuf_submit(r, 0);
			__sync_fetch_and_add(&rec_kept, 1);
		}
	}

	/* seq % 4 == 1: 8 bytes short of a record; else a record and seq % 8 more bytes */
	for (int i = 0; i < 8; i++)
		b.tail[i] = seq + i;
	__u64 size = seq % 4 == 1 ? sizeof(*p) - 8 : sizeof(*p) + (seq & 7);
	bpf_ringbuf_output(&mixed_rb, &b, size, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
""".replace("@PLAIN@", PLAIN_C)

PID = os.getpid()


def rec_expected(seq: int) -> dict[str, Any]:
    """Every field of ``struct rec`` (bitfields included) for ``seq``."""
    return {"seq": seq, "f4": seq & 0xF, "f12": seq * 3 & 0xFFF, "s7": seq % 128 - 64,
            "arr": [seq & 0xFFFF, seq + 1 & 0xFFFF, seq + 2 & 0xFFFF], "neg": -seq}


def mixed_expected(seq: int) -> tuple[dict[str, Any], bytes]:
    """The plain record of a mixed sample (zero-padded when short) and its tail."""
    if seq % 4 == 1:
        return {**plain_expected(seq), "half": 0.0}, b""
    return plain_expected(seq), bytes((seq + i) & 0xFF for i in range(seq & 7))


def mixed_raw(seq: int, cls: Any) -> bytes:
    """The exact bytes of a mixed sample."""
    whole = cls(**plain_expected(seq)).to_bytes()
    if seq % 4 == 1:
        return whole[:PLAIN_SIZE - 8]
    return whole + mixed_expected(seq)[1]


def fields(r: Any) -> dict[str, Any]:
    out = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
    if "arr" in out:
        out["arr"] = list(out["arr"])
    return out


def kept_seqs(n: int, start: int = 0) -> list[int]:
    """The rec_rb sequence numbers not discarded by the program."""
    return [s for s in range(start, start + n) if s % 5 != 3]


@pytest.fixture(scope="module")
def gen(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The generated module of the program (skips if the kernel refuses BPF)."""
    d = tmp_path_factory.mktemp("ringdrain")
    obj = compile_bpf(SRC, d / "rbprog.bpf.o")
    run_btfgen("gen", obj, "-o", d / "rbprog_skel.py", check=True)
    mod = load(d / "rbprog_skel.py")
    load_or_skip(lambda: mod.RbprogSkel.open_and_load().destroy())
    return mod


@pytest.fixture
def skel(gen: ModuleType) -> Iterator[Any]:
    s = gen.RbprogSkel.open()
    s.rodata.target_tgid = PID
    s.load()
    s.attach()
    yield s
    s.destroy()


def trigger(n: int) -> None:
    for _ in range(n):
        os.getppid()


def mixed(skel: Any, gen: ModuleType) -> RingBuf[Any]:
    """mixed_rb typed as ``struct plain``, short samples allowed (zero-padded)."""
    return skel.maps.mixed_rb.with_record(RecordCodec(gen.Plain, min_size=PLAIN_SIZE - 8))


def test_extension_is_built() -> None:
    assert drain.AVAILABLE, f"compiled drain unavailable: {drain.UNAVAILABLE_REASON}"


def test_plain_records_every_field_built_in_bulk(skel: Any, gen: ModuleType) -> None:
    got: list[Any] = []
    rb = skel.maps.plain_rb.open_ring_buffer(got.append)
    assert rb.drained and rb._bulk is not None  # the C record builder
    trigger(3000)
    assert rb.poll(100) == 3000
    assert [fields(r) for r in got] == [plain_expected(i) for i in range(3000)]
    assert all(type(r) is gen.Plain and type(r.half) is float for r in got)
    assert rb.received == 3000 == skel.bss.plain_ok
    assert rb.poll(0) == 0 and rb._rings is not None and rb._rings.pending() == 0
    assert rb._rings.out.count == 0  # built straight from the ring: the copying drain never ran


def test_direct_path_skips_discarded_records(skel: Any) -> None:
    got: list[int] = []
    rb = skel.maps.pdisc_rb.open_ring_buffer(lambda r: got.append(r.seq))
    assert rb._bulk is not None
    trigger(500)
    while rb.poll(20):
        pass
    assert got == kept_seqs(500)
    assert rb._rings is not None and rb._rings.out.count == 0 and rb._rings.pending() == 0


def test_direct_path_poll_from_the_callback_delivers_each_record_once(skel: Any) -> None:
    got: list[int] = []
    rb: Any = None

    def callback(r: Any) -> None:
        got.append(r.seq)
        if r.seq % 100 == 0:
            rb.poll(0)  # takes the rest of the ring before this callback returns

    rb = skel.maps.plain_rb.open_ring_buffer(callback)
    trigger(300)
    rb.consume()
    assert got == list(range(300)) and rb.received == 300


def test_poll_returns_under_sustained_load(skel: Any) -> None:
    """Each callback makes the program commit another record, so the ring never
    empties: poll() still returns, after at most one ring's worth (256 KiB of
    64-byte records), and a callback's exception comes out after its pass."""
    got: list[int] = []

    def refill(r: Any) -> None:
        got.append(r.seq)
        os.getppid()

    rb = skel.maps.plain_rb.open_ring_buffer(refill)
    trigger(1)
    n = rb.poll(0)
    assert 0 < n <= (1 << 18) // 64 and got == list(range(n))

    def refill_then_fail(r: Any) -> None:
        os.getppid()
        if r.seq == got[-1] + 10:
            raise KeyboardInterrupt

    rb.close()
    rb = skel.maps.plain_rb.open_ring_buffer(refill_then_fail)
    with pytest.raises(KeyboardInterrupt):
        rb.poll(0)
    assert rb.received < 100


def test_nested_poll_without_the_drain_is_refused(skel: Any) -> None:
    """libbpf's callback path cannot nest (it would deliver records again)."""
    got: list[int] = []

    def callback(r: Any) -> None:
        got.append(r.seq)
        rb.poll(0)

    rb = skel.maps.plain_rb.open_ring_buffer(callback, drain=False)
    trigger(3)
    with pytest.raises(RuntimeError, match="already being polled"):
        rb.consume()
    assert got == [0]  # libbpf stops at the callback's exception
    with pytest.raises(RuntimeError, match="already being polled"):
        rb.consume()  # still usable: the next record, the same refusal
    assert got == [0, 1]


@pytest.mark.parametrize("drained", [True, False], ids=["drain", "libbpf-callback"])
def test_discarded_records_are_skipped(skel: Any, drained: bool) -> None:
    got: list[Any] = []
    rb = skel.maps.rec_rb.open_ring_buffer(got.append, drain=drained)
    assert rb.drained == drained and rb._bulk is None  # bitfields: from_bytes
    trigger(500)
    while rb.poll(20):
        pass
    assert [fields(r) for r in got] == [rec_expected(s) for s in kept_seqs(500)]
    assert rb.received == len(got) == skel.bss.rec_kept == 400


def test_drained_equals_libbpf_callback_in_every_mode(skel: Any, gen: ModuleType) -> None:
    """Typed (short samples zero-padded), payload and raw bytes: the drain and
    libbpf's callback path deliver the same, and exactly what was sent."""
    results: dict[bool, dict[str, list[Any]]] = {}
    typed = mixed(skel, gen)
    raw_map = RingBuf(typed._h)
    start = 1000
    for drained in (True, False):
        skel.bss.attempts = start  # the same sequence numbers for both paths
        out: dict[str, list[Any]] = {"typed": [], "payload": [], "raw": []}
        bufs = [typed.open_ring_buffer(out["typed"].append, drain=drained),
                typed.open_ring_buffer(out["payload"].append, payload=True, drain=drained),
                raw_map.open_ring_buffer(out["raw"].append, drain=drained)]
        for rb in bufs:  # three readers of one ring take turns: one burst of 40 each
            assert rb.drained == drained
            trigger(40)
            assert rb.consume() == 40 and rb.received == 40
            rb.close()
        assert all(isinstance(w, WithPayload) for w in out["payload"])
        results[drained] = {
            "typed": [fields(r) for r in out["typed"]],
            "payload": [(fields(w.record), w.payload) for w in out["payload"]],
            "raw": out["raw"]}
    assert results[True] == results[False]
    assert results[True]["typed"] == [mixed_expected(s)[0] for s in range(start, start + 40)]
    assert results[True]["payload"] == [mixed_expected(s) for s in range(start + 40, start + 80)]
    assert results[True]["raw"] == [mixed_raw(s, gen.Plain) for s in range(start + 80, start + 120)]


def test_short_sample_below_min_size_is_an_error(skel: Any, gen: ModuleType) -> None:
    got: list[Any] = []
    big = skel.maps.mixed_rb.with_record(RecordCodec(gen.Big, min_size=PLAIN_SIZE))
    rb = big.open_ring_buffer(got.append)
    trigger(4)
    with pytest.raises(ValueError, match="48-byte sample is shorter than its 64-byte record"):
        rb.consume()
    assert [r.p.seq for r in got] == [0, 2, 3]  # the others were delivered
    assert rb.received == 4


def test_full_ring_counts_exactly(skel: Any) -> None:
    """A one-page ring holds at most 64 records of 64 bytes (the kernel keeps it
    from filling up completely: 63): the rest fail in the program; what arrives
    is exactly what the kernel accepted, in order."""
    got: list[int] = []
    rb = skel.maps.small_rb.open_ring_buffer(lambda r: got.append(r.seq))
    assert rb.drained
    trigger(1000)
    rb.consume()
    trigger(1)  # space again after the drain
    rb.consume()
    attempts, ok = skel.bss.attempts, skel.bss.small_ok
    assert attempts == 1001 and 60 < ok <= 65
    assert got == [*range(ok - 1), 1000]
    assert rb.received == ok


def test_wraps_around_many_times_in_order(skel: Any) -> None:
    got: list[Any] = []
    rb = skel.maps.small_rb.open_ring_buffer(got.append)
    for _ in range(100):  # 100 x 40 x 64 bytes through a 4096-byte ring: ~62 wraps
        trigger(40)
        assert rb.poll(0) == 40
    assert [fields(r) for r in got] == [plain_expected(i) for i in range(4000)]
    assert rb.received == skel.bss.small_ok == 4000


def test_drain_buffer_full_leaves_the_rest_in_the_ring(skel: Any, gen: ModuleType) -> None:
    """When the drain buffer fills up (records can take more room there than in
    the ring: a record slot per sample), the drain stops, advances the ring only
    past what it copied, and the next pass takes the rest, in order."""
    got: list[Any] = []
    big = skel.maps.small_rb.with_record(RecordCodec(gen.Big, min_size=PLAIN_SIZE))
    rb = big.open_ring_buffer(got.append)
    assert rb._rings is not None
    rb._rings.out.data_size = 25 * gen.Big.SIZE  # room for 25 records per pass
    trigger(60)
    assert rb.consume() == 60
    assert [fields(r.p) for r in got] == [plain_expected(i) for i in range(60)]
    assert all(r.tail == b"" for r in got)  # zero-padded: 56-byte samples
    assert rb._rings.pending() == 0 and rb._rings.out.count == 10  # the last pass


def test_callback_exceptions_first_raised_others_counted(skel: Any) -> None:
    seen: list[int] = []

    def callback(r: Any) -> None:
        seen.append(r.seq)
        if r.seq % 3 == 1:
            raise LookupError(r.seq)

    rb = skel.maps.plain_rb.open_ring_buffer(callback)
    trigger(30)
    with pytest.raises(LookupError) as exc:
        rb.consume()
    assert exc.value.args == (1,) and seen == list(range(30))
    assert "9 more callback exceptions" in "".join(getattr(exc.value, "__notes__", []))
    assert rb.received == 30
    trigger(3)  # still usable
    with pytest.raises(LookupError) as exc:
        rb.consume()
    assert exc.value.args == (31,) and seen == list(range(33)) and rb.received == 33


def test_close_from_a_callback(skel: Any) -> None:
    seen: list[int] = []
    rb: Any = None

    def callback(r: Any) -> None:
        seen.append(r.seq)
        rb.close()

    rb = skel.maps.plain_rb.open_ring_buffer(callback)
    mapping = rb._rings
    trigger(5)
    assert rb.poll(0) == 5  # the records already copied are delivered
    assert seen == list(range(5)) and rb.closed
    assert mapping is not None and mapping._maps == []  # unmapped once poll returned
    with pytest.raises(ValueError, match="closed"):
        rb.poll(0)


def test_queue_iterator_and_asyncio(skel: Any) -> None:
    rb = skel.maps.plain_rb.open_ring_buffer()
    assert rb.drained
    trigger(5)
    it = iter(rb)
    assert [next(it).seq for _ in range(5)] == list(range(5))
    rec_rb = skel.maps.rec_rb.open_ring_buffer()  # from_bytes records, queued

    async def read(n: int) -> list[Any]:
        out: list[Any] = []
        asyncio.get_running_loop().call_later(0.02, trigger, n)
        async for rec in rec_rb:
            out.append(rec)
            if len(out) == len(kept_seqs(n, 5)):
                break
        return out

    got = asyncio.run(asyncio.wait_for(read(10), 10))
    # rec_rb also holds 0..4 from the first trigger
    assert [fields(r) for r in got] == [rec_expected(s) for s in kept_seqs(10)]


@pytest.mark.parametrize("drained", [True, False], ids=["drain", "libbpf-callback"])
def test_bounded_batches_leave_the_rest_for_the_next(skel: Any, drained: bool) -> None:
    rb = skel.maps.plain_rb.open_ring_buffer(drain=drained)
    trigger(1000)
    sizes: list[int] = []
    seqs: list[int] = []
    while len(batch := rb.read_batch(0, max_records=300)):
        sizes.append(len(batch))
        assert batch.segments == [(-1, len(batch))]
        seqs += [r.seq for r in batch.records()]
    assert sizes == [300, 300, 300, 100] and seqs == list(range(1000))


def test_read_batch_records_and_numpy(skel: Any, gen: ModuleType) -> None:
    import numpy as np

    rb = skel.maps.plain_rb.open_ring_buffer()
    trigger(500)
    batch = rb.read_batch(50)
    assert len(batch) == 500 and batch.segments == [(-1, 500)] and batch.sizes is None
    assert [fields(r) for r in batch.records()] == [plain_expected(i) for i in range(500)]
    arr = batch.array()
    assert arr.dtype.itemsize == PLAIN_SIZE
    for name in ("seq", "neg", "u32", "s32", "u16", "s16", "u8", "s8", "odd", "name", "half"):
        assert arr[name].tolist() == [plain_expected(i)[name] for i in range(500)], name
    assert batch.cpu_array().tolist() == [-1] * 500
    assert np.all(arr["seq"] == np.arange(500))
    assert rb.received == 500 and len(rb.read_batch(0)) == 0

    # short samples: zero-padded records, their sizes kept; the same without the drain
    for drained in (True, False):
        m = mixed(skel, gen).open_ring_buffer(drain=drained)
        m.consume()  # what earlier triggers left
        start = skel.bss.attempts
        trigger(12)
        b = m.read_batch(0)
        assert [fields(r) for r in m.read_batch(0).records()] == []
        assert b.sizes == [len(mixed_raw(s, gen.Plain)) for s in range(start, start + 12)]
        # variable-length records: short samples (>= min_size) decode zero-padded
        assert [fields(r) for r in b.records()] == [mixed_expected(s)[0]
                                                    for s in range(start, start + 12)]
        assert b.array()["seq"].tolist() == list(range(start, start + 12))
        assert b.segments == [(-1, 12)]
        assert bytes(b.data) == b"".join(mixed_raw(s, gen.Plain)[:PLAIN_SIZE].ljust(
            PLAIN_SIZE, b"\0") for s in range(start, start + 12))
        m.close()


def test_no_fd_or_mapping_left_after_close(skel: Any, gen: ModuleType) -> None:
    def ring_mappings() -> int:
        with open("/proc/self/maps") as f:
            return sum("bpf-map" in line or "bpf_ringbuf" in line for line in f)

    fds, maps = len(os.listdir("/proc/self/fd")), ring_mappings()
    rb = skel.maps.plain_rb.open_ring_buffer(lambda r: None)
    trigger(3)
    assert rb.poll(0) == 3
    assert ring_mappings() > maps and len(os.listdir("/proc/self/fd")) > fds
    rb.close()
    rb.close()  # idempotent
    assert ring_mappings() == maps and len(os.listdir("/proc/self/fd")) == fds

    # destroying the object unmaps a buffer nobody closed; the map goes from the kernel
    before = fd_ids()
    s = gen.RbprogSkel.open()
    s.rodata.target_tgid = PID
    s.load()
    s.attach()
    rb2 = s.maps.plain_rb.open_ring_buffer(lambda r: None)
    trigger(2)
    assert rb2.poll(0) == 2
    ours = {k: v - before[k] for k, v in fd_ids().items()}
    s.destroy()
    assert rb2.closed and rb2._rings is not None and rb2._rings._maps == []
    assert ring_mappings() == maps and len(os.listdir("/proc/self/fd")) == fds
    assert ours["map_id"] and not still_alive(ours)  # a mapping would keep its map
