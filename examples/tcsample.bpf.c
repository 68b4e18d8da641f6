// SPDX-License-Identifier: GPL-2.0
/* tc packet sampler: every Nth packet in either direction produces a struct
 * tc_sample followed by up to MAX_CAPTURE bytes of the packet, appended by the
 * kernel (bpf_perf_event_output's BPF_F_CTXLEN_MASK bits).  The same program is
 * attached at ingress and egress; the sample says which. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_CAPTURE 128

struct tc_sample {
	__u64 seq;
	__u32 ifindex;
	__u32 pkt_len;
	__u32 cap_len;
	__u16 protocol;		/* host order */
	__u8 ingress;		/* 1 at ingress, 0 at egress */
	__u8 _pad;
};

const volatile __u32 sample_every = 1;
__u64 seq = 0;
__u64 seen = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} samples SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct tc_sample")));

struct tc_sample *unused_tc_sample __attribute__((unused));

SEC("tc")
int sample(struct __sk_buff *skb)
{
	__u64 n = __sync_fetch_and_add(&seen, 1);
	__u64 cap = skb->len < MAX_CAPTURE ? skb->len : MAX_CAPTURE;
	struct tc_sample s = {};

	if (sample_every > 1 && n % sample_every)
		return TC_ACT_OK;
	s.seq = __sync_fetch_and_add(&seq, 1);
	s.ifindex = skb->ifindex;
	s.pkt_len = skb->len;
	s.cap_len = cap;
	s.protocol = bpf_ntohs(skb->protocol);
	s.ingress = skb->ingress_ifindex != 0;
	bpf_perf_event_output(skb, &samples, (cap << 32) | BPF_F_CURRENT_CPU, &s, sizeof(s));
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
