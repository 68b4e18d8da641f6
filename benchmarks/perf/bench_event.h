/* The benchmarks' record and its bookkeeping, shared by bench.bpf.c (perf
 * buffer) and ringbuf.bpf.c (ring buffer).  attempts/successes count the
 * outputs tried and the ones the kernel accepted, so a consumer can check
 * received == successes and received + lost == attempts. */
#ifndef BENCH_EVENT_H
#define BENCH_EVENT_H

struct event {
	__u64 seq;
	__u64 ts_ns;
	__u32 pid;
	__u32 cpu;
	char comm[16];
	__u64 check; /* seq * 2654435761: lets a reader verify each record */
};

const volatile __u32 target_tgid = 0;
__u64 attempts = 0;
__u64 successes = 0;

/* Fill e for this call if it comes from the target process (else return 0). */
static __always_inline int bench_event(struct event *e)
{
	__u64 id = bpf_get_current_pid_tgid();

	if ((id >> 32) != target_tgid)
		return 0;
	e->seq = __sync_fetch_and_add(&attempts, 1);
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->check = e->seq * 2654435761ULL;
	return 1;
}

#endif
