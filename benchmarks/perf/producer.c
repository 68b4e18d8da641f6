/* Benchmark producer: getppid() flat out or at a fixed rate, on the CPU it is pinned to.
 * Reads commands on stdin:
 *   run COUNT RATE   COUNT calls, RATE per second (0: flat out); prints "calls elapsed_s cpu_s"
 *   quit             one last call (the sentinel, which makes the kernel write its loss
 *                    report into the ring), then exit */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu(void)
{
	/* precise (scheduler runtime), unlike getrusage's tick-sampled figures */
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run(long count, double rate)
{
	double t0 = now(), c0 = cpu(), t1, c1;
	long i;

	if (rate <= 0) {
		for (i = 0; i < count; i++)
			syscall(SYS_getppid);
	} else {
		/* bursts of ~1 ms worth of calls, then sleep until the next burst is due */
		long burst = (long)(rate / 1000) > 0 ? (long)(rate / 1000) : 1;
		double period = burst / rate, next = t0;
		for (i = 0; i < count; ) {
			long j;
			for (j = 0; j < burst && i < count; j++, i++)
				syscall(SYS_getppid);
			next += period;
			double left = next - now();
			if (left > 0) { /* sleep, do not spin: the producer's CPU is measured */
				struct timespec ts = {0, (long)(left * 1e9)};
				nanosleep(&ts, NULL);
			}
		}
	}
	t1 = now();
	c1 = cpu();
	printf("%ld %.6f %.6f\n", count, t1 - t0, c1 - c0);
	fflush(stdout);
}

int main(void)
{
	char line[128];
	long count;
	double rate;

	while (fgets(line, sizeof(line), stdin)) {
		if (sscanf(line, "run %ld %lf", &count, &rate) == 2)
			run(count, rate);
		else if (strncmp(line, "quit", 4) == 0)
			break;
	}
	syscall(SYS_getppid);
	return 0;
}
