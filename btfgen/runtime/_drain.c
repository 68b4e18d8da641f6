/* Drain perf event rings and BPF ring buffers into one contiguous buffer, no
 * Python per record.
 *
 * Part of btfgen's runtime, compiled by cffi (API mode) at install time; see
 * _drain_build.py.  It needs no libbpf headers: libbpf sets the rings up
 * (perf_buffer__new_raw) and hands out their mmap'ed memory
 * (perf_buffer__buffer); this file only reads records out of it.
 *
 * Ring layout (linux/perf_event.h): page 0 is struct perf_event_mmap_page, with
 * data_head (written by the kernel) at byte 1024 and data_tail (written by us)
 * at 1032; the data area follows, data_size bytes, a power of two.  Records are
 * 8-byte aligned and may wrap around the end of the data area.  BPF ring
 * buffers (BPF_MAP_TYPE_RINGBUF) are read from btfgen's own mapping of the map:
 * see btfgen_ringbuf_drain below.
 */
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <sys/epoll.h>

#define BTFGEN_PAGE_HEAD 1024
#define BTFGEN_PAGE_TAIL 1032
#define BTFGEN_RECORD_LOST 2
#define BTFGEN_RECORD_SAMPLE 9

struct btfgen_ring {
    char *base;          /* the mmap'ed header page; data starts at base + page_size */
    uint64_t page_size;
    uint64_t data_size;  /* bytes of the data area (power of two) */
};

struct btfgen_drain_out {
    char *data;           /* records, see btfgen_drain */
    uint64_t data_size;
    uint32_t *sizes;      /* per record: the sample's raw size */
    uint32_t max_records;
    uint32_t *ring_counts; /* per ring: records written in this call */
    uint64_t *ring_lost;   /* per ring: samples the kernel reported lost (added to) */
    uint32_t count;        /* out: records written */
    uint64_t used;         /* out: bytes of data written */
    uint32_t short_count;  /* out: records shorter than stride */
    uint32_t more;         /* out: 1 when it stopped because data or sizes were full */
    uint64_t lost;         /* out: lost samples reported in this call, all rings */
    int32_t only_ring;     /* out: the ring every record came from, or -1 */
};

/* Copy len bytes at ring offset pos (mod size) to dst, across the wrap. */
static void ring_copy(char *dst, const char *data, uint64_t size, uint64_t pos, uint64_t len)
{
    uint64_t off = pos & (size - 1);
    uint64_t first = size - off;
    if (first >= len) {
        memcpy(dst, data + off, len);
    } else {
        memcpy(dst, data + off, first);
        memcpy(dst + first, data, len - first);
    }
}

/* Drain every ring into out.  stride > 0: record i goes to data + i*stride,
 * min(size, stride) bytes, zero-filled to stride.  stride == 0: records are
 * packed, each starting 8-byte aligned after the previous one.  Returns the
 * number of records (also out->count). */
int btfgen_drain(struct btfgen_ring *rings, int nrings, uint32_t stride,
                 struct btfgen_drain_out *out)
{
    uint32_t n = 0, nshort = 0;
    uint64_t used = 0;
    int r;

    out->more = 0;
    out->lost = 0;
    out->only_ring = -1;
    for (r = 0; r < nrings; r++) {
        struct btfgen_ring *ring = &rings[r];
        volatile uint64_t *headp = (volatile uint64_t *)(ring->base + BTFGEN_PAGE_HEAD);
        uint64_t *tailp = (uint64_t *)(ring->base + BTFGEN_PAGE_TAIL);
        const char *data = ring->base + ring->page_size;
        uint64_t size = ring->data_size;
        uint64_t head, tail;
        uint32_t before = n;

        out->ring_counts[r] = 0;
        if (!ring->base)
            continue;
        /* Acquire: record bytes are read only after the head that covers them. */
        head = __atomic_load_n(headp, __ATOMIC_ACQUIRE);
        tail = *tailp;
        while (tail < head) {
            uint32_t hdr[3];
            uint32_t type, rec_size, raw;
            uint64_t off = tail & (size - 1);
            const char *rec = NULL;
            if (off + 16 <= size) { /* header and raw size in place (the usual case) */
                memcpy(hdr, data + off, 12);
                if (off + (hdr[1] >> 16) <= size)
                    rec = data + off; /* the whole record is contiguous */
            } else {
                ring_copy((char *)hdr, data, size, tail, 12);
            }
            type = hdr[0];
            rec_size = hdr[1] >> 16;  /* u32 type, u16 misc, u16 size */
            raw = hdr[2];
            if (rec_size < 8 || rec_size > head - tail)
                break; /* cannot happen with a sane kernel; stop rather than loop */
            if (type == BTFGEN_RECORD_SAMPLE) {
                uint64_t dst, want;
                if (rec_size < 12)
                    raw = 0;
                else if (raw > (uint32_t)rec_size - 12)
                    raw = rec_size - 12;
                want = stride ? stride : raw;
                dst = stride ? (uint64_t)n * stride : used;
                if (n >= out->max_records || dst + want > out->data_size) {
                    out->more = 1;
                    break;
                }
                if (stride) {
                    uint64_t take = raw < stride ? raw : stride;
                    if (rec)
                        memcpy(out->data + dst, rec + 12, take);
                    else
                        ring_copy(out->data + dst, data, size, tail + 12, take);
                    if (take < stride) {
                        memset(out->data + dst + take, 0, stride - take);
                        nshort++;
                    }
                    used = dst + stride;
                } else {
                    ring_copy(out->data + dst, data, size, tail + 12, raw);
                    used = (dst + raw + 7) & ~(uint64_t)7;
                    if (used > out->data_size)
                        used = out->data_size;
                }
                out->sizes[n++] = raw;
            } else if (type == BTFGEN_RECORD_LOST) {
                uint64_t lost[2]; /* u64 id, u64 lost */
                ring_copy((char *)lost, data, size, tail + 8, 16);
                out->ring_lost[r] += lost[1];
                out->lost += lost[1];
            }
            tail += rec_size;
        }
        /* Release: our reads of the records finish before the kernel may reuse them. */
        __atomic_store_n(tailp, tail, __ATOMIC_RELEASE);
        out->ring_counts[r] = n - before;
        if (n != before)
            out->only_ring = before == 0 ? r : -2;
        if (out->more)
            break;
    }
    if (out->only_ring == -2)
        out->only_ring = -1;
    out->count = n;
    out->used = used;
    out->short_count = nshort;
    return (int)n;
}

/* Wait up to timeout_ms for any ring of the epoll set to be readable.
 * Returns the number of ready fds, 0 on timeout, -errno on error. */
int btfgen_wait(int epoll_fd, int timeout_ms)
{
    struct epoll_event events[64];
    int rc = epoll_wait(epoll_fd, events, 64, timeout_ms);
    return rc < 0 ? -errno : rc;
}

/* Wait (unless timeout_ms is 0) for a ring to be readable, then drain them all,
 * whether or not they woke us: records wait at most timeout_ms however the
 * wakeups are batched.  Returns the record count or -errno (EINTR is not an
 * error: the rings are drained anyway). */
int btfgen_poll(int epoll_fd, int timeout_ms, struct btfgen_ring *rings, int nrings,
                uint32_t stride, struct btfgen_drain_out *out)
{
    if (timeout_ms != 0) {
        int rc = btfgen_wait(epoll_fd, timeout_ms);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    return btfgen_drain(rings, nrings, stride, out);
}

/* Bytes waiting in the rings (for the fallback's and tests' benefit). */
uint64_t btfgen_pending(struct btfgen_ring *rings, int nrings)
{
    uint64_t total = 0;
    int r;
    for (r = 0; r < nrings; r++) {
        if (!rings[r].base)
            continue;
        total += __atomic_load_n((uint64_t *)(rings[r].base + BTFGEN_PAGE_HEAD), __ATOMIC_ACQUIRE)
                 - *(uint64_t *)(rings[r].base + BTFGEN_PAGE_TAIL);
    }
    return total;
}

/* BPF_MAP_TYPE_RINGBUF (kernel/bpf/ringbuf.c, uapi BPF_RINGBUF_*): one ring for
 * all CPUs.  The map fd's mmap gives a consumer page (consumer_pos, u64 at 0,
 * the only part user space writes), then a producer page (producer_pos at 0),
 * then the data area (data_size bytes, a power of two) mapped twice in a row,
 * so a record is always contiguous.  Each record starts 8-byte aligned with an
 * 8-byte header: u32 len (BUSY bit: still being written; DISCARD bit: dropped
 * by the program) and u32 pg_off; the sample follows, the next record starts
 * at round_up(len + 8, 8). */
#define BTFGEN_RINGBUF_BUSY (1U << 31)
#define BTFGEN_RINGBUF_DISCARD (1U << 30)
#define BTFGEN_RINGBUF_HDR 8

struct btfgen_ringbuf {
    uint64_t *consumer_pos;  /* in the read-write consumer page */
    uint64_t *producer_pos;  /* in the read-only producer page */
    const char *data;        /* the first of the two mappings of the data area */
    uint64_t data_size;
};

/* Copy the committed records of a BPF ring buffer into out (same conventions
 * as btfgen_drain, as one ring: stride > 0, one record per slot, else packed),
 * skipping discarded ones and stopping at the first one still being written.
 * consumer_pos advances only past records copied (or skipped), so records that
 * did not fit in out stay in the ring for the next call (out->more = 1).
 * Returns the record count. */
int btfgen_ringbuf_drain(struct btfgen_ringbuf *rb, uint32_t stride,
                         struct btfgen_drain_out *out)
{
    uint32_t n = 0, nshort = 0;
    uint64_t used = 0, mask = rb->data_size - 1;
    uint64_t cons = __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
    uint64_t prod;
    int progress = 1;

    out->more = 0;
    out->lost = 0;
    /* Like libbpf, look at producer_pos again after a pass that found records,
     * so a record committed meanwhile is not left waiting for the next wakeup. */
    while (progress && !out->more) {
        uint64_t start = cons;
        progress = 0;
        /* Acquire: a header is read only after the producer_pos covering it. */
        prod = __atomic_load_n(rb->producer_pos, __ATOMIC_ACQUIRE);
        while (cons < prod) {
            const char *hdr = rb->data + (cons & mask);
            /* Acquire: the sample is read only after its committed length. */
            uint32_t len = __atomic_load_n((const uint32_t *)hdr, __ATOMIC_ACQUIRE);
            uint32_t raw;
            uint64_t step;
            if (len & BTFGEN_RINGBUF_BUSY)
                break;  /* reserved, not yet submitted: it and all after it wait */
            raw = len & ~(BTFGEN_RINGBUF_BUSY | BTFGEN_RINGBUF_DISCARD);
            step = ((uint64_t)raw + BTFGEN_RINGBUF_HDR + 7) & ~(uint64_t)7;
            if (step > prod - cons)
                break;  /* cannot happen with a sane kernel; stop rather than overrun */
            if (!(len & BTFGEN_RINGBUF_DISCARD)) {
                const char *sample = hdr + BTFGEN_RINGBUF_HDR;
                uint64_t want = stride ? stride : raw;
                uint64_t dst = stride ? (uint64_t)n * stride : used;
                if (n >= out->max_records || dst + want > out->data_size) {
                    out->more = 1;
                    break;
                }
                if (stride) {
                    uint64_t take = raw < stride ? raw : stride;
                    memcpy(out->data + dst, sample, take);
                    if (take < stride) {
                        memset(out->data + dst + take, 0, stride - take);
                        nshort++;
                    }
                    used = dst + stride;
                } else {
                    memcpy(out->data + dst, sample, raw);
                    used = (dst + raw + 7) & ~(uint64_t)7;
                    if (used > out->data_size)
                        used = out->data_size;
                }
                out->sizes[n++] = raw;
            }
            cons += step;
            progress = 1;
        }
        /* Once per pass rather than per record as libbpf does, and only past
         * what was copied.  At least release (the copies finish before the
         * kernel may reuse the space); sequentially consistent because the
         * kernel wakes the reader only when a record it commits sits at
         * consumer_pos: with this store ordered before the next pass's loads,
         * either the kernel sees the new consumer_pos and wakes us, or that
         * pass sees the record it committed. */
        if (cons != start)
            __atomic_store_n(rb->consumer_pos, cons, __ATOMIC_SEQ_CST);
    }
    out->ring_counts[0] = n;
    out->only_ring = n ? 0 : -1;
    out->count = n;
    out->used = used;
    out->short_count = nshort;
    return (int)n;
}

/* btfgen_poll for a BPF ring buffer: wait (unless timeout_ms is 0) on epoll_fd,
 * then drain whatever is there. */
int btfgen_ringbuf_poll(int epoll_fd, int timeout_ms, struct btfgen_ringbuf *rb,
                        uint32_t stride, struct btfgen_drain_out *out)
{
    if (timeout_ms != 0) {
        int rc = btfgen_wait(epoll_fd, timeout_ms);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    return btfgen_ringbuf_drain(rb, stride, out);
}

/* Bytes between consumer and producer (committed, busy or discarded). */
uint64_t btfgen_ringbuf_pending(struct btfgen_ringbuf *rb)
{
    return __atomic_load_n(rb->producer_pos, __ATOMIC_ACQUIRE)
           - __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
}
