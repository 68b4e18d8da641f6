/* Benchmark reference consumer: libbpf perf_buffer with C callbacks.
 *   c_consumer TARGET_TGID PAGES REGIME [WAKEUP_EVENTS]
 * Loads bench.bpf.o through its bpftool skeleton and prints "ready".  REGIME live:
 * polls until SIGUSR2; SIGUSR1 drains and prints "drained".  REGIME backlog: does
 * not poll; each SIGUSR1 drains what is waiting (CPU counted only for the drains)
 * and prints "drained"; SIGUSR2 ends.  At the end prints one JSON line:
 * received, lost, attempts, successes, cpu_s (consumer CPU from ready to the end),
 * bad (records whose check field is wrong). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <linux/perf_event.h>
#include <bpf/libbpf.h>
#include "bench.skel.h"

struct event { unsigned long long seq, ts_ns; unsigned int pid, cpu; char comm[16];
               unsigned long long check; };

static volatile sig_atomic_t want_drain, want_stop;
static unsigned long long received, lost, bad;

static void on_sig(int sig) { if (sig == SIGUSR1) want_drain = 1; else want_stop = 1; }

static void on_sample(void *ctx, int cpu, void *data, __u32 size)
{
	const struct event *e = data;
	(void)ctx; (void)cpu;
	if (size < sizeof(*e) || e->check != e->seq * 2654435761ULL)
		bad++;
	received++;
}

static void on_lost(void *ctx, int cpu, __u64 n) { (void)ctx; (void)cpu; lost += n; }

/* perf_buffer__new_raw's callback (used for WAKEUP_EVENTS > 1): the same work. */
static enum bpf_perf_event_ret on_raw(void *ctx, int cpu, struct perf_event_header *ev)
{
	if (ev->type == PERF_RECORD_SAMPLE) {
		struct { struct perf_event_header h; __u32 size; char data[]; } *s = (void *)ev;
		on_sample(ctx, cpu, s->data, s->size);
	} else if (ev->type == PERF_RECORD_LOST) {
		struct { struct perf_event_header h; __u64 id; __u64 lost; } *l = (void *)ev;
		on_lost(ctx, cpu, l->lost);
	}
	return LIBBPF_PERF_EVENT_CONT;
}

static double cpu_s(void)
{
	/* precise (scheduler runtime), unlike getrusage's tick-sampled figures */
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	struct bench_bpf *skel;
	struct perf_buffer *pb;
	struct sigaction sa;
	double c0;
	int err;

	int backlog;
	sigset_t set;

	if (argc < 4)
		return 2;
	backlog = strcmp(argv[3], "backlog") == 0;
	skel = bench_bpf__open();
	if (!skel)
		return 1;
	skel->rodata->target_tgid = (unsigned)atoi(argv[1]);
	if ((err = bench_bpf__load(skel)) || (err = bench_bpf__attach(skel))) {
		fprintf(stderr, "load/attach: %d\n", err);
		return 1;
	}
	if (argc > 4 && atoi(argv[4]) > 1) {
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE, .size = sizeof(attr),
			.config = PERF_COUNT_SW_BPF_OUTPUT, .sample_type = PERF_SAMPLE_RAW,
			.sample_period = 1, .wakeup_events = atoi(argv[4]),
		};
		pb = perf_buffer__new_raw(bpf_map__fd(skel->maps.events), atoi(argv[2]), &attr, on_raw,
					  NULL, NULL);
	} else {
		pb = perf_buffer__new(bpf_map__fd(skel->maps.events), atoi(argv[2]), on_sample,
				      on_lost, NULL, NULL);
	}
	if (!pb) {
		fprintf(stderr, "perf_buffer__new: %d\n", errno);
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sig;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	if (backlog) {  /* blocked before "ready": a drain signal may follow at once */
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigaddset(&set, SIGUSR2);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	printf("ready\n");
	fflush(stdout);
	if (backlog) {
		double spent = 0;
		int sig;
		while (sigwait(&set, &sig) == 0 && sig == SIGUSR1) {
			c0 = cpu_s();
			perf_buffer__consume(pb);
			spent += cpu_s() - c0;
			printf("drained\n");
			fflush(stdout);
		}
		c0 = cpu_s() - spent;
		goto done;
	}
	c0 = cpu_s();
	while (!want_stop) {
		err = perf_buffer__poll(pb, 100);
		if (err < 0 && err != -EINTR)
			break;
		if (want_drain) {
			want_drain = 0;
			perf_buffer__consume(pb);
			printf("drained\n");
			fflush(stdout);
		}
	}
	perf_buffer__consume(pb);
done:
	printf("{\"received\": %llu, \"lost\": %llu, \"attempts\": %llu, \"successes\": %llu, "
	       "\"cpu_s\": %.6f, \"bad\": %llu}\n", received, lost,
	       (unsigned long long)skel->bss->attempts, (unsigned long long)skel->bss->successes,
	       cpu_s() - c0, bad);
	perf_buffer__free(pb);
	bench_bpf__destroy(skel);
	return 0;
}
