/* The C reference for bench_ringbuf.py: libbpf's ring_buffer__consume with a C
 * callback that checks each record, as a shared library called once per drain
 * (the call itself is noise next to a drain of many thousand records). */
#include <stdint.h>
#include <stddef.h>
#include <bpf/libbpf.h>

struct event {
	uint64_t seq, ts_ns;
	uint32_t pid, cpu;
	char comm[16];
	uint64_t check;
};

static long received, bad;

static int on_sample(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	received++;
	if (size < sizeof(*e) || e->check != e->seq * 2654435761ULL)
		bad++;
	return 0;
}

struct ring_buffer *rb_open(int map_fd)
{
	return ring_buffer__new(map_fd, on_sample, NULL, NULL);
}

/* Drain everything waiting; returns the records received, *nbad the bad ones. */
long rb_drain(struct ring_buffer *rb, long *nbad)
{
	received = bad = 0;
	ring_buffer__consume(rb);
	*nbad = bad;
	return received;
}

void rb_close(struct ring_buffer *rb)
{
	ring_buffer__free(rb);
}
