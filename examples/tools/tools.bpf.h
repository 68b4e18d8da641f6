/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by btfgen's ported tools (written for btfgen; the behaviour and output
 * follow the libbpf-tools programs of the same names, from the bcc project). */
#ifndef BTFGEN_TOOLS_BPF_H
#define BTFGEN_TOOLS_BPF_H

#define TASK_COMM_LEN 16

/* The perf event array "events", tagged with its record type for btfgen gen. */
#define PERF_EVENTS_OF(record)						\
	struct {							\
		__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);		\
		__uint(key_size, sizeof(__u32));			\
		__uint(value_size, sizeof(__u32));			\
	} events SEC(".maps")						\
		__attribute__((btf_decl_tag("btfgen:record=" #record)))
#define TASK_RUNNING 0

/* floor(log2(v)) for v > 0, 0 for 0: libbpf-tools' slot convention. */
static __always_inline __u64 log2_u32(__u32 v)
{
	__u32 shift, r;

	r = (v > 0xFFFF) << 4; v >>= r;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u64 log2l_u64(__u64 v)
{
	__u32 hi = v >> 32;

	return hi ? log2_u32(hi) + 32 : log2_u32(v);
}

#endif
