// SPDX-License-Identifier: GPL-2.0
/* probe-tool's BPF side: one struct probe_event per execve(), sent through a
 * ring buffer, and a running count of them in .bss. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "probe.h"

/* Only count and report this process's children when non-zero. */
const volatile __u32 targ_ppid = 0;

__u64 execs = 0;

/* A global pointer (never used) keeps struct probe_event in BTF. */
struct probe_event *unused_probe_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024);
} probe_events SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct probe_event")));

SEC("tracepoint/syscalls/sys_enter_execve")
int on_execve(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	struct probe_event *e;
	__u32 ppid = BPF_CORE_READ_PPID(task);

	if (targ_ppid && ppid != targ_ppid)
		return 0;
	__sync_fetch_and_add(&execs, 1);
	e = bpf_ringbuf_reserve(&probe_events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ppid = ppid;
	e->ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_user_str(e->filename, sizeof(e->filename), (const char *)ctx->args[0]);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
