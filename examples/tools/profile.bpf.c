// SPDX-License-Identifier: GPL-2.0
/* profile: sample stacks at a timed interval (perf_event cpu-clock) and count
 * them per (process, user stack, kernel stack).  Written for btfgen after
 * libbpf-tools' profile (bcc project). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "tools.bpf.h"

#define PERF_MAX_STACK_DEPTH 127

struct key_t {
	__u32 pid;
	int user_stack_id;
	int kern_stack_id;
	char name[TASK_COMM_LEN];
};

const volatile bool kernel_stacks_only = false;
const volatile bool user_stacks_only = false;
const volatile bool include_idle = false;
const volatile pid_t targ_pid = -1;
const volatile pid_t targ_tid = -1;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__type(key, __u32);
	__type(value, __u64[PERF_MAX_STACK_DEPTH]);
	__uint(max_entries, 1024);
} stackmap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct key_t);
	__type(value, __u64);
	__uint(max_entries, 10240);
} counts SEC(".maps");

SEC("perf_event")
int do_perf_event(struct bpf_perf_event_data *ctx)
{
	__u64 id = bpf_get_current_pid_tgid(), one = 1, *valp;
	__u32 pid = id >> 32, tid = id;
	struct key_t key = {};

	if (!include_idle && tid == 0)
		return 0;
	if (targ_pid != -1 && targ_pid != pid)
		return 0;
	if (targ_tid != -1 && targ_tid != tid)
		return 0;
	key.pid = pid;
	bpf_get_current_comm(&key.name, sizeof(key.name));
	key.kern_stack_id = user_stacks_only ? -1 : bpf_get_stackid(ctx, &stackmap, 0);
	key.user_stack_id = kernel_stacks_only ? -1 :
		bpf_get_stackid(ctx, &stackmap, BPF_F_USER_STACK);

	valp = bpf_map_lookup_elem(&counts, &key);
	if (valp)
		__sync_fetch_and_add(valp, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
