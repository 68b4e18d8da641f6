/* Drain perf event rings and BPF ring buffers into one contiguous buffer, no
 * Python per record.
 *
 * Part of btfgen's runtime, compiled by cffi (API mode) at install time; see
 * _drain_build.py.  It needs no libbpf headers: libbpf sets the perf rings up
 * (perf_buffer__new_raw) and hands out their mmap'ed memory
 * (perf_buffer__buffer); this file only reads records out of it (their layout:
 * _perf_ring.h, shared with _records.c).  BPF ring buffers
 * (BPF_MAP_TYPE_RINGBUF) are read from btfgen's own mapping of the map: see
 * btfgen_ringbuf_drain below.
 */
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <sys/epoll.h>
#include "_perf_ring.h"
#include "_bpf_ringbuf.h"

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
    /* The delivery cursor, kept here so an exception that interrupts delivery
     * (a signal handler's, say) loses nothing: the records of the last drain
     * from index done (byte offset done_bytes) on are not delivered yet.
     * Each drain sets them to 0; the record builders (_records.c) advance them. */
    uint64_t done;
    uint64_t done_bytes;
};

/* Copy n bytes: small records 8 bytes at a time (the compiler inlines a
 * fixed-size memcpy; a libc call per record costs more than the copy). */
static inline void copy_small(char *dst, const char *src, uint64_t n)
{
    uint64_t k = 0;
    if (n > 128) {
        memcpy(dst, src, n);
        return;
    }
    for (; k + 16 <= n; k += 16)
        memcpy(dst + k, src + k, 16);
    if (k + 8 <= n) {
        memcpy(dst + k, src + k, 8);
        k += 8;
    }
    for (; k < n; k++)
        dst[k] = src[k];
}

/* Where a drain writes: out's fields, copied (and the buffers restrict) so the
 * compiler need not assume the record copies may change them: reloading them
 * per record costs more than the copy.  Its helpers are always inlined for the
 * same reason. */
#define SINK_FN static inline __attribute__((always_inline))

struct sink {
    char *restrict data;
    uint64_t data_size, used;
    uint32_t *restrict sizes;
    uint32_t max_records, n, nshort, more;
};

/* limit: at most that many records (0: as many as out holds). */
SINK_FN void sink_open(struct sink *k, const struct btfgen_drain_out *out, uint32_t limit)
{
    k->data = out->data;
    k->data_size = out->data_size;
    k->used = 0;
    k->sizes = out->sizes;
    k->max_records = limit && limit < out->max_records ? limit : out->max_records;
    k->n = k->nshort = k->more = 0;
}

SINK_FN void sink_close(const struct sink *k, struct btfgen_drain_out *out)
{
    out->count = k->n;
    out->used = k->used;
    out->short_count = k->nshort;
    out->more = k->more;
    out->done = 0;
    out->done_bytes = 0;
}

/* Append a sample of raw bytes: at a fixed stride, cut or zero-filled to it, or
 * packed 8-byte aligned.  src NULL: the sample wraps around the end of a perf
 * ring, read it from there.  Returns 0, and sets more, when out has no room. */
SINK_FN int sink_add(struct sink *k, uint32_t stride, const char *src, uint64_t raw,
                     const char *ring, uint64_t ring_size, uint64_t ring_pos)
{
    uint64_t dst = k->used; /* at a fixed stride: n * stride */
    uint64_t take = stride && raw > stride ? stride : raw;
    if (k->n >= k->max_records || dst + (stride ? stride : raw) > k->data_size) {
        k->more = 1;
        return 0;
    }
    if (dst + BTFGEN_PREFETCH_AHEAD < k->data_size)  /* write intent: the buffer is cold too */
        __builtin_prefetch(k->data + dst + BTFGEN_PREFETCH_AHEAD, 1);
    if (src)
        copy_small(k->data + dst, src, take);
    else
        btfgen_ring_copy(k->data + dst, ring, ring_size, ring_pos, take);
    if (stride) {
        if (take < stride) {
            memset(k->data + dst + take, 0, stride - take);
            k->nshort++;
        }
        k->used = dst + stride;
    } else {
        k->used = (dst + raw + 7) & ~(uint64_t)7;
        if (k->used > k->data_size)
            k->used = k->data_size;
    }
    k->sizes[k->n++] = (uint32_t)raw;
    return 1;
}

/* Drain every ring into out, at most limit records (0: as many as out holds).
 * stride > 0: record i goes to data + i*stride, min(size, stride) bytes,
 * zero-filled to stride.  stride == 0: records are packed, each starting 8-byte
 * aligned after the previous one.  Returns the number of records (also
 * out->count). */
static int btfgen_drain(struct btfgen_ring *rings, int nrings, uint32_t stride,
                        uint32_t limit, struct btfgen_drain_out *out)
{
    struct sink k;
    uint64_t lost_total = 0;
    int32_t only_ring = -1;
    int r;

    sink_open(&k, out, limit);
    for (r = 0; r < nrings && !k.more; r++) {
        struct btfgen_ring *ring = &rings[r];
        uint64_t *tailp, head, tail;
        const char *data;
        uint32_t before = k.n;

        out->ring_counts[r] = 0;
        if (!ring->base)
            continue;
        tailp = (uint64_t *)(ring->base + BTFGEN_PAGE_TAIL);
        data = ring->base + ring->page_size;
        /* Acquire: record bytes are read only after the head that covers them. */
        head = __atomic_load_n((uint64_t *)(ring->base + BTFGEN_PAGE_HEAD), __ATOMIC_ACQUIRE);
        tail = *tailp;
        while (tail < head) {
            struct btfgen_perf_record rec;
            if (btfgen_ring_next(data, ring->data_size, tail, head, &rec) < 0)
                break; /* cannot happen with a sane kernel; stop rather than loop */
            if (rec.type == BTFGEN_RECORD_SAMPLE) {
                if (!sink_add(&k, stride, rec.sample, rec.raw, data, ring->data_size, tail + 12))
                    break;
            } else if (rec.lost) {
                out->ring_lost[r] += rec.lost;
                lost_total += rec.lost;
            }
            tail += rec.size;
        }
        /* Release: our reads of the records finish before the kernel may reuse them. */
        __atomic_store_n(tailp, tail, __ATOMIC_RELEASE);
        out->ring_counts[r] = k.n - before;
        if (k.n != before)
            only_ring = before == 0 ? r : -2;
    }
    sink_close(&k, out);
    out->lost = lost_total;
    out->only_ring = only_ring == -2 ? -1 : only_ring;
    return (int)k.n;
}

/* Wait up to timeout_ms for any ring of the epoll set to be readable.
 * Returns the number of ready fds, 0 on timeout, -errno on error. */
static int btfgen_wait(int epoll_fd, int timeout_ms)
{
    struct epoll_event events[64];
    int rc = epoll_wait(epoll_fd, events, 64, timeout_ms);
    return rc < 0 ? -errno : rc;
}

/* Wait (unless timeout_ms is 0) for a ring to be readable, then drain them all,
 * whether or not they woke us: records wait at most timeout_ms however the
 * wakeups are batched.  Returns the record count or -errno (EINTR is not an
 * error: the rings are drained anyway). */
int btfgen_poll(int epoll_fd, struct btfgen_ring *rings, int nrings,
                struct btfgen_drain_out *out, int timeout_ms, uint32_t stride, uint32_t limit)
{
    if (timeout_ms != 0) {
        int rc = btfgen_wait(epoll_fd, timeout_ms);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    return btfgen_drain(rings, nrings, stride, limit, out);
}

/* BPF_MAP_TYPE_RINGBUF: one ring for all CPUs (layout and walk: _bpf_ringbuf.h). */

/* Copy the committed records of a BPF ring buffer into out (same conventions
 * as btfgen_drain, as one ring: stride > 0, one record per slot, else packed),
 * skipping discarded ones and stopping at the first one still being written.
 * consumer_pos advances only past records copied (or skipped), so records that
 * did not fit in out stay in the ring for the next call (out->more = 1).
 * Returns the record count. */
static int btfgen_ringbuf_drain(struct btfgen_ringbuf *rb, uint32_t stride, uint32_t limit,
                                struct btfgen_drain_out *out)
{
    struct sink k;
    uint64_t cons = __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
    uint64_t prod;
    int progress = 1;

    sink_open(&k, out, limit);
    /* Like libbpf, look at producer_pos again after a pass that found records,
     * so a record committed meanwhile is not left waiting for the next wakeup. */
    while (progress && !k.more) {
        uint64_t start = cons;
        progress = 0;
        /* Acquire: a header is read only after the producer_pos covering it. */
        prod = __atomic_load_n(rb->producer_pos, __ATOMIC_ACQUIRE);
        while (cons < prod) {
            const char *sample;
            uint32_t raw;
            uint64_t step;
            int kind = btfgen_ringbuf_next(rb->data, rb->data_size, cons, prod, &sample, &raw,
                                           &step);
            if (kind == BTFGEN_RB_WAIT)
                break;
            /* the data area is mapped twice: a sample never wraps */
            if (kind == BTFGEN_RB_RECORD && !sink_add(&k, stride, sample, raw, NULL, 0, 0))
                break;
            cons += step;
            progress = 1;
        }
        /* Once per pass rather than per record as libbpf does, and only past
         * what was copied (see btfgen_ringbuf_consume). */
        if (cons != start)
            btfgen_ringbuf_consume(rb->consumer_pos, cons);
    }
    sink_close(&k, out);
    out->lost = 0;
    out->ring_counts[0] = k.n;
    out->only_ring = k.n ? 0 : -1;
    return (int)k.n;
}

/* btfgen_poll for a BPF ring buffer: wait (unless timeout_ms is 0) on epoll_fd,
 * then drain whatever is there. */
int btfgen_ringbuf_poll(int epoll_fd, struct btfgen_ringbuf *rb, struct btfgen_drain_out *out,
                        int timeout_ms, uint32_t stride, uint32_t limit)
{
    if (timeout_ms != 0) {
        int rc = btfgen_wait(epoll_fd, timeout_ms);
        if (rc < 0 && rc != -EINTR)
            return rc;
    }
    return btfgen_ringbuf_drain(rb, stride, limit, out);
}

/* Bytes between consumer and producer (committed, busy or discarded). */
uint64_t btfgen_ringbuf_pending(struct btfgen_ringbuf *rb)
{
    return __atomic_load_n(rb->producer_pos, __ATOMIC_ACQUIRE)
           - __atomic_load_n(rb->consumer_pos, __ATOMIC_ACQUIRE);
}
