/* Walking a BPF ring buffer (BPF_MAP_TYPE_RINGBUF): shared by the drain
 * (_drain.c, which copies records into one buffer) and the record builder
 * (_records.c, which builds records in place and hands them to a callback),
 * so a fix lands in one place.
 *
 * Layout (kernel/bpf/ringbuf.c, uapi BPF_RINGBUF_*): the map fd's mmap gives a
 * consumer page (consumer_pos, u64 at 0, the only part user space writes),
 * then a producer page (producer_pos at 0), then the data area (data_size
 * bytes, a power of two) mapped twice in a row, so a record is always
 * contiguous.  Each record starts 8-byte aligned with an 8-byte header: u32
 * len (BUSY bit: still being written; DISCARD bit: dropped by the program) and
 * u32 pg_off; the sample follows, the next record starts at
 * round_up(len + 8, 8). */
#ifndef BTFGEN_BPF_RINGBUF_H
#define BTFGEN_BPF_RINGBUF_H

#include <stdint.h>
#include "_perf_ring.h"

#define BTFGEN_RINGBUF_BUSY (1U << 31)
#define BTFGEN_RINGBUF_DISCARD (1U << 30)
#define BTFGEN_RINGBUF_HDR 8

struct btfgen_ringbuf {
    uint64_t *consumer_pos;  /* in the read-write consumer page */
    uint64_t *producer_pos;  /* in the read-only producer page */
    const char *data;        /* the first of the two mappings of the data area */
    uint64_t data_size;
};

/* What btfgen_ringbuf_next found at cons. */
enum {
    BTFGEN_RB_WAIT = -1,     /* still being written (or an impossible size): stop here */
    BTFGEN_RB_RECORD = 0,    /* a committed sample: *sample, *raw bytes */
    BTFGEN_RB_DISCARDED = 1, /* dropped by the program: skip it */
};

/* Look at the record at consumer position cons (cons < prod).  *step is how
 * far the consumer position moves past it.  Never writes the ring. */
static inline int btfgen_ringbuf_next(const char *data, uint64_t data_size, uint64_t cons,
                                      uint64_t prod, const char **sample, uint32_t *raw,
                                      uint64_t *step)
{
    const char *hdr = data + (cons & (data_size - 1));
    uint32_t len;
    btfgen_ring_prefetch(data, data_size, cons);
    /* Acquire: the sample is read only after its committed length. */
    len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
    if (len & BTFGEN_RINGBUF_BUSY)
        return BTFGEN_RB_WAIT;  /* reserved, not yet submitted: it and all after it wait */
    *raw = len & ~(BTFGEN_RINGBUF_BUSY | BTFGEN_RINGBUF_DISCARD);
    *step = ((uint64_t)*raw + BTFGEN_RINGBUF_HDR + 7) & ~(uint64_t)7;
    if (*step > prod - cons)
        return BTFGEN_RB_WAIT;  /* cannot happen with a sane kernel; stop rather than overrun */
    *sample = hdr + BTFGEN_RINGBUF_HDR;
    return len & BTFGEN_RINGBUF_DISCARD ? BTFGEN_RB_DISCARDED : BTFGEN_RB_RECORD;
}

/* Publish a new consumer position.  Sequentially consistent, not just
 * release: the kernel wakes the reader only when a record it commits sits at
 * consumer_pos; with this store ordered before the reader's next loads, either
 * the kernel sees the new consumer_pos and wakes us, or the next pass sees the
 * record it committed. */
static inline void btfgen_ringbuf_consume(uint64_t *consumer_pos, uint64_t cons)
{
    __atomic_store_n(consumer_pos, cons, __ATOMIC_SEQ_CST);
}

#endif
