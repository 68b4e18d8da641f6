// SPDX-License-Identifier: GPL-2.0
/* execsnoop-like tracer: one record per execve(), with the file name and the
 * first MAX_ARGS arguments.  The record is built in a per-CPU "heap" map (it is
 * too big for the BPF stack), which also puts struct event into BTF. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define TASK_COMM_LEN 16
#define FNAME_LEN 128
#define MAX_ARGS 6
#define ARG_LEN 64

struct event {
	__u64 seq;              /* running number of records emitted */
	__u64 ts_ns;            /* bpf_ktime_get_ns() at execve entry */
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__u32 args_count;       /* arguments read into argv (<= MAX_ARGS) */
	char comm[TASK_COMM_LEN];
	char filename[FNAME_LEN];
	char argv[MAX_ARGS][ARG_LEN];
};

/* Only report children of this process when non-zero. */
const volatile __u32 targ_ppid = 0;

__u64 seq = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct event);
} heap SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct event")));

SEC("tracepoint/syscalls/sys_enter_execve")
int handle_execve(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	__u32 zero = 0;
	struct event *e;
	const char **args = (const char **)ctx->args[1];
	const char *arg;
	int i;

	if (targ_ppid && ppid != targ_ppid)
		return 0;
	e = bpf_map_lookup_elem(&heap, &zero);
	if (!e)
		return 0;
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = ppid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->args_count = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)ctx->args[0]);
#pragma unroll
	for (i = 0; i < MAX_ARGS; i++) {
		e->argv[i][0] = 0;
	}
#pragma unroll
	for (i = 0; i < MAX_ARGS; i++) {
		if (bpf_probe_read_user(&arg, sizeof(arg), &args[i]) || !arg)
			break;
		bpf_probe_read_user_str(e->argv[i], ARG_LEN, arg);
		e->args_count++;
	}
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
