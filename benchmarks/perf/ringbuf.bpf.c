// SPDX-License-Identifier: GPL-2.0
/* Ring buffer benchmark: one 48-byte record per getppid() of the target process
 * into a BPF_MAP_TYPE_RINGBUF (the record and its counters: bench_event.h). */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "bench_event.h"

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 23); } events SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	struct event e = {};

	if (!bench_event(&e))
		return 0;
	if (bpf_ringbuf_output(&events, &e, sizeof(e), 0) == 0)
		__sync_fetch_and_add(&successes, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
