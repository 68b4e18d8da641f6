"""The BPF program of the reader fault suite (tests/test_reader_faults*.py).

Every getppid() of the target process takes the next sequence number from
``sent`` and writes three records derived from it -- plain C fields, one with
arrays and a nested struct, and one ending in a flexible array (``seq % 23``
bytes of it) -- to a perf event array each (``p_plain``, ``p_arr``, ``p_flex``)
and to a ring buffer each (``r_plain``, ``r_arr``, ``r_flex``; the program
counts what a full ring refused in ``r_refused``).  Flexible records of fewer
than 4 data bytes are shorter than ``sizeof(struct flex)`` (16): read them with
``RecordCodec(Flex, min_size=FLEX_MIN)``.  A reader that got each
sequence number exactly once, intact, has ``received + lost == sent``.
"""

from __future__ import annotations

from typing import Any

from tests.helpers.plain_record import PLAIN_C, plain_expected

SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

@PLAIN@

struct arrays {
	__u64 seq;
	__u32 a[3];
	struct { __u16 lo; __u16 hi; } pair;
	char tag[6];
};

struct flex {
	__u64 seq;
	__u32 len;
	__u8 data[];
};

#define FLEX_DATA 12 /* offsetof(struct flex, data): within the struct's padding */

struct flex_buf {
	struct flex f;
	__u8 room[24];
};

const volatile __u32 target_tgid = 0;
__u64 sent = 0;
__u64 r_refused[3] = {};

#define PERF(name) struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); \
	__uint(key_size, 4); __uint(value_size, 4); } name SEC(".maps")
#define RING(name) struct { __uint(type, BPF_MAP_TYPE_RINGBUF); \
	__uint(max_entries, 1 << 20); } name SEC(".maps")
PERF(p_plain);
PERF(p_arr);
PERF(p_flex);
RING(r_plain);
RING(r_arr);
RING(r_flex);
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } r_small SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int emit(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u64 seq = __sync_fetch_and_add(&sent, 1);
	struct plain p = {};
	struct arrays a = {};
	struct flex_buf f = {};
	fill_plain(&p, seq);
	a.seq = seq;
	a.a[0] = seq * 3; a.a[1] = seq * 3 + 1; a.a[2] = seq * 3 + 2;
	a.pair.lo = seq; a.pair.hi = ~seq;
	a.tag[0] = 'A' + seq % 26;
	f.f.seq = seq;
	__u32 len = seq % 23;
	f.f.len = len;
	__u8 *d = (__u8 *)&f + FLEX_DATA;
	for (int i = 0; i < 23; i++)
		d[i] = seq + i;
	__u64 fsize = FLEX_DATA + len;
	asm volatile("" : "+r"(fsize)); /* the verifier wants the bound it cannot see */
	if (fsize > FLEX_DATA + 23)
		return 0;
	bpf_perf_event_output(ctx, &p_plain, BPF_F_CURRENT_CPU, &p, sizeof(p));
	bpf_perf_event_output(ctx, &p_arr, BPF_F_CURRENT_CPU, &a, sizeof(a));
	bpf_perf_event_output(ctx, &p_flex, BPF_F_CURRENT_CPU, &f, fsize);
	if (bpf_ringbuf_output(&r_plain, &p, sizeof(p), 0))
		__sync_fetch_and_add(&r_refused[0], 1);
	if (bpf_ringbuf_output(&r_arr, &a, sizeof(a), 0))
		__sync_fetch_and_add(&r_refused[1], 1);
	if (bpf_ringbuf_output(&r_flex, &f, fsize, 0))
		__sync_fetch_and_add(&r_refused[2], 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
""".replace("@PLAIN@", PLAIN_C)


#: The shortest flexible record: its header, no data.
FLEX_MIN = 12


def expected(kind: str, seq: int) -> dict[str, Any]:
    """What a record of ``kind`` ("plain", "arr", "flex") holds for ``seq``."""
    if kind == "plain":
        return plain_expected(seq)
    if kind == "arr":
        return {"seq": seq, "a": [seq * 3 & 0xFFFFFFFF, seq * 3 + 1 & 0xFFFFFFFF,
                                  seq * 3 + 2 & 0xFFFFFFFF],
                "lo": seq & 0xFFFF, "hi": ~seq & 0xFFFF, "tag": bytes([65 + seq % 26])}
    n = seq % 23
    # the generator reads a flexible __u8 array like char[]: bytes up to the first NUL
    data = bytes((seq + i) & 0xFF for i in range(n)).partition(b"\0")[0]
    return {"seq": seq, "len": n, "data": data}


def observed(kind: str, rec: Any) -> dict[str, Any]:
    """The same fields read from a decoded record."""
    if kind == "plain":
        return {k: getattr(rec, k) for k in plain_expected(0)}
    if kind == "arr":
        return {"seq": rec.seq, "a": list(rec.a), "lo": rec.pair.lo, "hi": rec.pair.hi,
                "tag": rec.tag}
    data = bytes(rec.data)
    return {"seq": rec.seq, "len": rec.len_, "data": data}
