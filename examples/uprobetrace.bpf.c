// SPDX-License-Identifier: GPL-2.0
/* uprobe tracer: each call of a user-space function, its first argument, its
 * return value and how long it took.  Attached at run time to any binary or
 * library and function (the sections name no target). */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct call {
	__u64 arg;
	__s64 ret;
	__u64 duration_ns;
	__u32 pid;
	__u32 tid;
	char comm[16];
};

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 10240); __type(key, __u32);
         __type(value, struct call); } inflight SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 18); } calls SEC(".maps")
    __attribute__((btf_decl_tag("btfgen:record=struct call")));

SEC("uprobe")
int BPF_KPROBE(enter, long arg)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct call c = {.arg = arg, .duration_ns = bpf_ktime_get_ns(), .pid = id >> 32,
			 .tid = tid};

	bpf_get_current_comm(c.comm, sizeof(c.comm));
	bpf_map_update_elem(&inflight, &tid, &c, BPF_ANY);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(leave, long ret)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&inflight, &tid);
	struct call *out;

	if (!c)
		return 0;
	out = bpf_ringbuf_reserve(&calls, sizeof(*out), 0);
	if (out) {
		*out = *c;
		out->ret = ret;
		out->duration_ns = bpf_ktime_get_ns() - c->duration_ns;
		bpf_ringbuf_submit(out, 0);
	}
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
