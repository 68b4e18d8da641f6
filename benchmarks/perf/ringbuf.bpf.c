// SPDX-License-Identifier: GPL-2.0
/* Ring buffer benchmark: one 48-byte record per getppid() of the target process
 * into a BPF_MAP_TYPE_RINGBUF; attempts/successes as in bench.bpf.c. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct event {
	__u64 seq;
	__u64 ts_ns;
	__u32 pid;
	__u32 cpu;
	char comm[16];
	__u64 check; /* seq * 2654435761: lets a reader verify each record */
};

const volatile __u32 target_tgid = 0;
__u64 attempts = 0;
__u64 successes = 0;

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 23); } events SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct event e = {};

	if ((id >> 32) != target_tgid)
		return 0;
	e.seq = __sync_fetch_and_add(&attempts, 1);
	e.ts_ns = bpf_ktime_get_ns();
	e.pid = (__u32)id;
	e.cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	e.check = e.seq * 2654435761ULL;
	if (bpf_ringbuf_output(&events, &e, sizeof(e), 0) == 0)
		__sync_fetch_and_add(&successes, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
