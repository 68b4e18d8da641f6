/* Benchmark producer: getppid() flat out or at a fixed rate, on the CPU it is pinned to.
 *   producer COUNT RATE   (RATE 0: flat out; else calls per second)
 * Waits for a line on stdin, runs, prints "calls elapsed_s cpu_s", waits for another
 * line, makes one last call (the sentinel, which flushes the kernel's loss report),
 * and exits. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
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
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

int main(int argc, char **argv)
{
	long count = argc > 1 ? atol(argv[1]) : 100000, i;
	double rate = argc > 2 ? atof(argv[2]) : 0, t0, c0, t1, c1;
	char line[64];

	if (!fgets(line, sizeof(line), stdin))
		return 1;
	t0 = now();
	c0 = cpu();
	if (rate <= 0) {
		for (i = 0; i < count; i++)
			syscall(SYS_getppid);
	} else {
		/* bursts of ~1 ms worth of calls, then wait for the next millisecond */
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
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	syscall(SYS_getppid);
	return 0;
}
