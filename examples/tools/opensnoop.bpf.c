// SPDX-License-Identifier: GPL-2.0
/* opensnoop: trace open()/openat() with their results.  Written for btfgen
 * after libbpf-tools' opensnoop (bcc project): entry stashes the arguments per
 * thread, exit sends them with the result through a perf buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "tools.bpf.h"

#define NAME_MAX 255
#define INVALID_UID ((uid_t)-1)

struct args_t {
	const char *fname;
	int flags;
};

struct event {
	__u64 ts;
	pid_t pid;
	uid_t uid;
	int ret;
	int flags;
	char comm[TASK_COMM_LEN];
	char fname[NAME_MAX];
};

const volatile pid_t targ_pid = 0;
const volatile pid_t targ_tgid = 0;
const volatile uid_t targ_uid = INVALID_UID;
const volatile bool targ_failed = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u32);
	__type(value, struct args_t);
} start SEC(".maps");

PERF_EVENTS_OF(struct event);

/* Keeps struct event in BTF (it only lives on the stack otherwise). */
struct event _event_type = {};

static __always_inline bool trace_allowed(__u32 tgid, __u32 pid)
{
	if (targ_tgid && targ_tgid != tgid)
		return false;
	if (targ_pid && targ_pid != pid)
		return false;
	if (targ_uid != INVALID_UID && targ_uid != (uid_t)bpf_get_current_uid_gid())
		return false;
	return true;
}

static __always_inline int enter(const char *fname, int flags)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, pid = id;
	struct args_t args = { .fname = fname, .flags = flags };

	if (trace_allowed(tgid, pid))
		bpf_map_update_elem(&start, &pid, &args, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int tracepoint__syscalls__sys_enter_open(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[0], (int)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tracepoint__syscalls__sys_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	return enter((const char *)ctx->args[1], (int)ctx->args[2]);
}

static __always_inline int trace_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct event event = {};
	struct args_t *ap;
	__u32 pid = bpf_get_current_pid_tgid();
	int ret;

	ap = bpf_map_lookup_elem(&start, &pid);
	if (!ap)
		return 0;
	ret = ctx->ret;
	if (targ_failed && ret >= 0)
		goto cleanup;
	event.ts = bpf_ktime_get_ns();
	event.pid = bpf_get_current_pid_tgid() >> 32;
	event.uid = bpf_get_current_uid_gid();
	bpf_get_current_comm(&event.comm, sizeof(event.comm));
	bpf_probe_read_user_str(&event.fname, sizeof(event.fname), ap->fname);
	event.flags = ap->flags;
	event.ret = ret;
	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &event, sizeof(event));
cleanup:
	bpf_map_delete_elem(&start, &pid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_open")
int tracepoint__syscalls__sys_exit_open(struct trace_event_raw_sys_exit *ctx)
{
	return trace_exit(ctx);
}

SEC("tracepoint/syscalls/sys_exit_openat")
int tracepoint__syscalls__sys_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	return trace_exit(ctx);
}

char LICENSE[] SEC("license") = "GPL";
