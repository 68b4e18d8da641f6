"""BPF programs that send ``struct event`` records in every way btfgen must type.

One source, variants chosen by -D flags (see :data:`VARIANTS`).  Each record
carries values derived from a sequence number so a live test can check every
field: :func:`expected_fields`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers.build import compile_bpf

EVENT_H = """\
#include <linux/types.h>
struct event {
\t__u32 pid;
\t__u32 seq;
\t__u64 magic;
\tchar tag[8];
\t__s16 neg;
\t__u8 flags : 3, kind : 5;
};
"""
EVENT_SIZE = 32

PROG_C = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <btfgen.bpf.h>
#include "event.h"

#if defined(RING)
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 18); } events SEC(".maps");
#elif defined(MAPBTF)
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(key, __u32);
	__type(value, struct event);
} events SEC(".maps");
#elif defined(DECL_TAG)
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
} events SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct event")));
#else
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 4);
} events SEC(".maps");
#endif
#ifdef HEAP
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} heap SEC(".maps");
#endif
#ifdef GLOBAL_POOL
struct event last_event;
#endif
#ifdef ANNOTATE
BTFGEN_RECORD(events, struct event);
#endif
__u32 counter;

static __always_inline void fill(struct event *e)
{
	__u32 seq = counter++;

	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->seq = seq;
	e->magic = 0x1122334455667788ULL ^ seq;
	__builtin_memcpy(e->tag, "btfgen!", 8);
	e->neg = -(__s16)seq;
	e->flags = seq & 7;
	e->kind = 21;
}

#ifdef CALL
static __attribute__((noinline)) int emit(void *ctx, struct event *e)
{
	return bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
}
#endif

SEC("tp/syscalls/sys_enter_getppid")
int handle(void *ctx)
{
#if defined(HEAP)
	__u32 zero = 0;
	struct event *e = bpf_map_lookup_elem(&heap, &zero);

	if (!e)
		return 0;
	fill(e);
#ifdef VARLEN
	__u64 len = e->seq & 31;
	if (len > 16)
		len = 16;
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, 16 + len);
#else
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
#endif
#elif defined(RING)
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e)
		return 0;
	fill(e);
	bpf_ringbuf_submit(e, 0);
#elif defined(CHOOSE)
	struct event e1, e2;
	struct event *e = bpf_get_prandom_u32() & 1 ? &e1 : &e2;

	__builtin_memset(e, 0, sizeof(*e));
	fill(e);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
#else
	struct event e;

	__builtin_memset(&e, 0, sizeof(e));
	fill(&e);
#ifdef CALL
	emit(ctx, &e);
#else
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &e, sizeof(e));
#endif
#endif
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: name -> (defines, strip DWARF?)
VARIANTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "stack": ((), False),
    "stack_stripped": ((), True),
    "annotate": (("ANNOTATE",), True),
    "call": (("CALL",), False),
    "heap": (("HEAP",), True),
    "varlen": (("HEAP", "VARLEN"), True),
    "ring": (("RING",), False),
    "ring_stripped": (("RING",), True),
    "pool": (("GLOBAL_POOL",), True),
    "mapbtf": (("MAPBTF",), True),
    "decltag": (("DECL_TAG", "GLOBAL_POOL"), True),
    "choose": (("CHOOSE",), False),
}


def build_variant(name: str, dest: Path, clang: str = "clang") -> Path:
    """Compile variant ``name`` into ``dest/<name>.bpf.o`` (``event.h`` next to it)."""
    defines, strip = VARIANTS[name]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "event.h").write_text(EVENT_H)
    out = compile_bpf(PROG_C, dest / f"{name}.bpf.o", clang=clang,
                      cflags=["-I", str(dest), *(f"-D{d}" for d in defines)])
    if strip:
        subprocess.run(["llvm-strip", "-g", str(out)], check=True)
    return out


def expected_fields(seq: int, pid: int) -> dict[str, object]:
    """What the program writes into record number ``seq``."""
    return {
        "pid": pid, "seq": seq, "magic": 0x1122334455667788 ^ seq, "tag": b"btfgen!",
        "neg": -seq,  # seq stays far below 0x8000 in the tests
        "flags": seq & 7, "kind": 21,
    }
