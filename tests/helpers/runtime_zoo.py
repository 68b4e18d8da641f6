"""A type-zoo BPF program and hand-written record classes for the runtime tests.

The program (tracepoint on getppid, filtered to one pid through .rodata) puts a
sequence number in every record and derives every other field from it, so a
test can check each received field; see :func:`expected`.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from btfgen.runtime.bpfobj import LibbpfObject
from btfgen.runtime.codec import ArrayCodec, Buffer, IntCodec, RecordCodec
from btfgen.runtime.errors import BpfError, BpfPermissionError
from btfgen.runtime.maps import ArrayMap, HashMap, PerCpuArrayMap
from btfgen.runtime.perf import PerfEventArray
from btfgen.runtime.ringbuf import RingBuf
from btfgen.runtime.sections import GlobalSection, var

ZOO_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u64 seq;
	__u32 pid;
	__s16 neg;
	__u8 flag;
	char comm[16];
	__u32 arr[3];
	struct { __u16 lo; __u16 hi; } pair;
	__s64 big;
};

const volatile __u32 target_pid = 0;
const volatile __u64 rodata_mult = 1;
__u64 bss_count = 0;
__u64 data_value = 7;
__u32 data_arr[4] = {1, 2, 3, 4};
__u64 custom_var SEC(".data.custom") = 99;

struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 16384); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, __u32);
         __type(value, struct event); } by_seq SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1); __type(key, __u32);
         __type(value, __u64); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32);
         __type(value, __u64); } arr SEC(".maps");

static __always_inline void fill(struct event *e, __u64 seq, __u32 pid)
{
	e->seq = seq;
	e->pid = pid;
	e->neg = -(__s16)seq;
	e->flag = seq & 1;
	e->comm[0] = 'a' + seq % 26;
	e->comm[1] = 'z';
	e->arr[0] = seq * 10;
	e->arr[1] = seq * 10 + 1;
	e->arr[2] = seq * 10 + 2;
	e->pair.lo = seq;
	e->pair.hi = ~seq;
	e->big = -(__s64)seq * 1000000007LL;
}

SEC("tp/syscalls/sys_enter_getppid")
int handle(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (pid != target_pid)
		return 0;
	__u64 seq = __sync_fetch_and_add(&bss_count, 1);
	struct event e = {};
	fill(&e, seq, pid);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
	struct event *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	if (r) {
		fill(r, seq, pid);
		bpf_ringbuf_submit(r, 0);
	}
	__u32 k = seq;
	bpf_map_update_elem(&by_seq, &k, &e, BPF_ANY);
	__u32 zero = 0;
	__u64 *c = bpf_map_lookup_elem(&pcpu, &zero);
	if (c)
		*c += 1;
	data_value = seq * rodata_mult;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@dataclass
class Event:
    """struct event of ZOO_SRC (56 bytes)."""

    seq: int
    pid: int
    neg: int
    flag: int
    comm: bytes
    arr: list[int]
    lo: int
    hi: int
    big: int

    SIZE = 56
    _S = struct.Struct("<QIhB16sx3IHHq")

    @classmethod
    def from_bytes(cls, buf: Buffer, offset: int = 0) -> Event:
        v = cls._S.unpack_from(buf, offset)
        return cls(v[0], v[1], v[2], v[3], v[4].partition(b"\0")[0], list(v[5:8]), v[8], v[9],
                   v[10])

    def to_bytes(self) -> bytes:
        return self._S.pack(self.seq, self.pid, self.neg, self.flag, self.comm, *self.arr,
                            self.lo, self.hi, self.big)


def expected(seq: int, pid: int) -> Event:
    """The record the zoo program writes for sequence number ``seq``."""
    s16 = -(seq & 0xFFFF)
    s16 = (s16 + 0x8000) % 0x10000 - 0x8000
    return Event(seq=seq, pid=pid, neg=s16, flag=seq & 1,
                 comm=bytes([ord("a") + seq % 26]) + b"z",
                 arr=[(seq * 10 + i) & 0xFFFFFFFF for i in range(3)], lo=seq & 0xFFFF,
                 hi=~seq & 0xFFFF, big=-seq * 1000000007)


U32 = IntCodec("<I")
U64 = IntCodec("<Q")
EVENT = RecordCodec(Event)


class Rodata(GlobalSection):
    SECTION = ".rodata"
    target_pid = var(U32, 0)
    rodata_mult = var(U64, 8)


class Bss(GlobalSection):
    SECTION = ".bss"
    bss_count = var(U64, 0)


class Data(GlobalSection):
    SECTION = ".data"
    data_value = var(U64, 0)
    data_arr = var(ArrayCodec(U32, 4), 8)


class DataCustom(GlobalSection):
    SECTION = ".data.custom"
    custom_var = var(U64, 0)


def zoo_maps(o: LibbpfObject) -> dict[str, Any]:
    """Typed wrappers of the zoo's maps and sections."""

    def m(name: str) -> Any:
        h = o.find_map(name)
        assert h is not None, name
        return h

    return {
        "events": PerfEventArray(m("events"), EVENT),
        "rb": RingBuf(m("rb"), EVENT),
        "by_seq": HashMap(m("by_seq"), U32, EVENT),
        "pcpu": PerCpuArrayMap(m("pcpu"), U32, U64),
        "arr": ArrayMap(m("arr"), U32, U64),
        "rodata": Rodata(m(".rodata")),
        "bss": Bss(m(".bss")),
        "data": Data(m(".data")),
        "custom": DataCustom(m(".data.custom")),
    }


def open_zoo(obj: bytes, pid: int, load: bool = True) -> tuple[LibbpfObject, dict[str, Any]]:
    """Open the zoo object with its filter on ``pid``, load and attach it."""
    o = LibbpfObject(obj, "zoo")
    try:
        maps = zoo_maps(o)
        maps["rodata"].target_pid = pid
        if load:
            o.load()
            o.attach()
    except BaseException:
        o.close()
        raise
    return o, maps


T = TypeVar("T")


def load_or_skip(load: Callable[[], T]) -> T:
    """``load()``, skipping the test (saying why) only when the kernel refuses BPF
    to this process (EPERM, no BPF syscall); any other failure fails the test."""
    try:
        return load()
    except BpfError as e:
        if isinstance(e, BpfPermissionError) or e.errno == errno.ENOSYS:
            pytest.skip(f"the kernel refuses BPF here: {str(e).splitlines()[0]}")
        raise
