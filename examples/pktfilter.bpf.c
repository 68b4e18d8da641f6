// SPDX-License-Identifier: GPL-2.0
/* A packet filter written to be unit-tested with Program.test_run:
 *  - XDP: drop UDP to port 9 (discard); answer UDP to port 7 (echo) by swapping
 *    the MAC addresses and sending it back (XDP_TX); pass the rest.
 *  - tc: mark TCP packets with 0x42 (skb->mark), shoot UDP to port 9.
 *  - socket filter: keep UDP datagrams whole, drop the rest.
 * Both count verdicts in a per-CPU array. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum verdict { V_PASS, V_DROP, V_ECHO, V_MARK, V_MAX };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, V_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdicts SEC(".maps");

static __always_inline void count(__u32 v)
{
	__u64 *n = bpf_map_lookup_elem(&verdicts, &v);
	if (n)
		(*n)++;
}

/* The IPv4 header after the Ethernet header, or NULL. */
static __always_inline struct iphdr *ipv4(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5)
		return NULL;
	return ip;
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct iphdr *ip = ipv4(data, end);
	struct udphdr *udp = (void *)(ip + 1);
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];

	if (!ip || ip->protocol != IPPROTO_UDP || (void *)(udp + 1) > end)
		goto pass;
	if (udp->dest == bpf_htons(9)) {
		count(V_DROP);
		return XDP_DROP;
	}
	if (udp->dest == bpf_htons(7)) {
		__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
		count(V_ECHO);
		return XDP_TX;
	}
pass:
	count(V_PASS);
	return XDP_PASS;
}

SEC("tc")
int tc_mark(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = ipv4(data, end);
	struct udphdr *udp = (void *)(ip + 1);

	if (ip && ip->protocol == IPPROTO_TCP) {
		skb->mark = 0x42;
		count(V_MARK);
		return TC_ACT_OK;
	}
	if (ip && ip->protocol == IPPROTO_UDP && (void *)(udp + 1) <= end &&
	    udp->dest == bpf_htons(9)) {
		count(V_DROP);
		return TC_ACT_SHOT;
	}
	count(V_PASS);
	return TC_ACT_OK;
}

SEC("socket")
int sock_udp_only(struct __sk_buff *skb)
{
	__u8 proto;

	/* a socket filter sees the packet from its network header */
	if (bpf_skb_load_bytes(skb, offsetof(struct iphdr, protocol), &proto, 1) < 0)
		return 0;
	return proto == IPPROTO_UDP ? skb->len : 0;
}

char LICENSE[] SEC("license") = "GPL";
