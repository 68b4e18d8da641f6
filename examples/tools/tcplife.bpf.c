// SPDX-License-Identifier: GPL-2.0
/* tcplife: one line per TCP session when it closes: process, addresses, bytes,
 * lifespan.  Written for btfgen after libbpf-tools' tcplife (bcc project), on the
 * sock:inet_sock_set_state tracepoint only (no kprobes needed). */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include "tools.bpf.h"

#define MAX_ENTRIES 10240
#define MAX_PORTS 1024
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

struct ident {
	__u32 pid;
	char comm[TASK_COMM_LEN];
};

struct event {
	__u8 saddr[16];
	__u8 daddr[16];
	__u64 ts_us;
	__u64 span_us;
	__u64 rx_b;
	__u64 tx_b;
	__u32 pid;
	__u16 sport;
	__u16 dport;
	__u16 family;
	char comm[TASK_COMM_LEN];
};

const volatile bool filter_sport = false;
const volatile bool filter_dport = false;
const volatile __u16 target_sports[MAX_PORTS] = {};
const volatile __u16 target_dports[MAX_PORTS] = {};
const volatile pid_t target_pid = 0;
const volatile __u16 target_family = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct sock *);
	__type(value, __u64);
} birth SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENTRIES);
	__type(key, struct sock *);
	__type(value, struct ident);
} idents SEC(".maps");

PERF_EVENTS_OF(struct event);

struct event _event_type = {};

static __always_inline bool port_listed(const volatile __u16 *ports, __u16 port)
{
	for (int i = 0; i < MAX_PORTS; i++) {
		if (!ports[i])
			return false;
		if (ports[i] == port)
			return true;
	}
	return false;
}

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct trace_event_raw_inet_sock_set_state *args)
{
	__u64 ts, *start, delta_us;
	struct ident ident = {}, *identp;
	struct event event = {};
	struct tcp_sock *tp;
	struct sock *sk;
	__u16 family, sport, dport;
	__u32 pid;
	int newstate;

	if (args->protocol != IPPROTO_TCP)
		return 0;
	family = args->family;
	if (target_family && family != target_family)
		return 0;
	sport = args->sport;
	if (filter_sport && !port_listed(target_sports, sport))
		return 0;
	dport = args->dport;
	if (filter_dport && !port_listed(target_dports, dport))
		return 0;
	sk = (struct sock *)args->skaddr;
	newstate = args->newstate;

	if (newstate < TCP_FIN_WAIT1) {
		ts = bpf_ktime_get_ns();
		bpf_map_update_elem(&birth, &sk, &ts, BPF_ANY);
	}
	if (newstate == TCP_SYN_SENT || newstate == TCP_LAST_ACK) {
		pid = bpf_get_current_pid_tgid() >> 32;
		if (target_pid && pid != target_pid)
			return 0;
		ident.pid = pid;
		bpf_get_current_comm(ident.comm, sizeof(ident.comm));
		bpf_map_update_elem(&idents, &sk, &ident, BPF_ANY);
	}
	if (newstate != TCP_CLOSE)
		return 0;

	start = bpf_map_lookup_elem(&birth, &sk);
	if (!start) {
		bpf_map_delete_elem(&idents, &sk);
		return 0;
	}
	ts = bpf_ktime_get_ns();
	delta_us = (ts - *start) / 1000;
	identp = bpf_map_lookup_elem(&idents, &sk);
	pid = identp ? identp->pid : bpf_get_current_pid_tgid() >> 32;
	if (target_pid && pid != target_pid)
		goto cleanup;

	tp = (struct tcp_sock *)sk;
	event.rx_b = BPF_CORE_READ(tp, bytes_received);
	event.tx_b = BPF_CORE_READ(tp, bytes_acked);
	event.ts_us = ts / 1000;
	event.span_us = delta_us;
	event.pid = pid;
	event.sport = sport;
	event.dport = dport;
	event.family = family;
	if (identp)
		__builtin_memcpy(event.comm, identp->comm, sizeof(event.comm));
	else
		bpf_get_current_comm(event.comm, sizeof(event.comm));
	if (family == AF_INET) {
		bpf_probe_read_kernel(event.saddr, 4, args->saddr);
		bpf_probe_read_kernel(event.daddr, 4, args->daddr);
	} else {
		bpf_probe_read_kernel(event.saddr, 16, args->saddr_v6);
		bpf_probe_read_kernel(event.daddr, 16, args->daddr_v6);
	}
	bpf_perf_event_output(args, &events, BPF_F_CURRENT_CPU, &event, sizeof(event));

cleanup:
	bpf_map_delete_elem(&birth, &sk);
	bpf_map_delete_elem(&idents, &sk);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
