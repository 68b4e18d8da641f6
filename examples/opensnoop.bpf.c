// SPDX-License-Identifier: GPL-2.0
/* opensnoop-like tracer: openat() entry stashes its arguments in a hash map
 * keyed by thread id; the exit emits them with the result.  .rodata filters
 * select one process and/or one user. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TASK_COMM_LEN 16
#define NAME_LEN 160
#define INVALID_UID ((__u32)-1)

struct args_t {
	const char *fname;
	__s32 flags;
	__u32 mode;
};

struct event {
	__u64 seq;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__s32 ret;              /* fd or -errno */
	__s32 flags;
	__u32 mode;
	char comm[TASK_COMM_LEN];
	char fname[NAME_LEN];
};

const volatile __u32 targ_pid = 0;              /* 0: every process */
const volatile __u32 targ_uid = INVALID_UID;    /* INVALID_UID: every user */

__u64 seq = 0;
__u64 missed_entries = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

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

static __always_inline bool wanted(void)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u32 uid = (__u32)bpf_get_current_uid_gid();

	if (targ_pid && targ_pid != pid)
		return false;
	if (targ_uid != INVALID_UID && targ_uid != uid)
		return false;
	return true;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct args_t args = {};

	if (!wanted())
		return 0;
	args.fname = (const char *)ctx->args[1];
	args.flags = (__s32)ctx->args[2];
	args.mode = (__u32)ctx->args[3];
	bpf_map_update_elem(&start, &tid, &args, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	struct args_t *ap;
	struct event *e;

	ap = bpf_map_lookup_elem(&start, &tid);
	if (!ap)
		return 0;
	e = bpf_map_lookup_elem(&heap, &zero);
	if (!e) {
		__sync_fetch_and_add(&missed_entries, 1);
		goto cleanup;
	}
	e->seq = __sync_fetch_and_add(&seq, 1);
	e->pid = id >> 32;
	e->tid = tid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ret = (__s32)ctx->ret;
	e->flags = ap->flags;
	e->mode = ap->mode;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->fname, sizeof(e->fname), ap->fname);
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, e, sizeof(*e));
cleanup:
	bpf_map_delete_elem(&start, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
