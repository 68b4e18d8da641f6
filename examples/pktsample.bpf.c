// SPDX-License-Identifier: GPL-2.0
/* XDP packet sampler: every packet (or every Nth) produces a struct pkt_meta
 * followed by up to MAX_CAPTURE bytes of the packet itself, appended by the
 * kernel via bpf_perf_event_output's BPF_F_CTXLEN_MASK flag bits. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_CAPTURE 256

struct pkt_meta {
	__u64 seq;              /* running number of sampled packets */
	__u64 ts_ns;
	__u32 ifindex;
	__u32 pkt_len;          /* length of the whole packet */
	__u32 cap_len;          /* packet bytes that follow this struct */
	__u16 eth_proto;        /* host order */
	__u8 rx_queue;
	__u8 _pad;
};

const volatile __u32 sample_every = 1;

__u64 seq = 0;
__u64 seen = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct pkt_meta")));

/* A global pointer (never used) keeps struct pkt_meta in BTF. */
struct pkt_meta *unused_pkt_meta __attribute__((unused));

SEC("xdp")
int sample(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	__u64 cap = len < MAX_CAPTURE ? len : MAX_CAPTURE;
	__u64 n = __sync_fetch_and_add(&seen, 1);
	struct pkt_meta m = {};
	__u8 *p = data;

	if (sample_every > 1 && n % sample_every)
		return XDP_PASS;
	m.seq = __sync_fetch_and_add(&seq, 1);
	m.ts_ns = bpf_ktime_get_ns();
	m.ifindex = ctx->ingress_ifindex;
	m.pkt_len = len;
	m.cap_len = cap;
	m.rx_queue = ctx->rx_queue_index;
	if (data + 14 <= data_end)
		m.eth_proto = ((__u16)p[12] << 8) | p[13];
	bpf_perf_event_output(ctx, &samples, (cap << 32) | BPF_F_CURRENT_CPU, &m, sizeof(m));
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
