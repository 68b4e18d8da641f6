/* Drain perf event rings into one contiguous buffer, no Python per record.
 *
 * Part of btfgen's runtime, compiled by cffi (API mode) at install time; see
 * _drain_build.py.  It needs no libbpf headers: libbpf sets the rings up
 * (perf_buffer__new_raw) and hands out their mmap'ed memory
 * (perf_buffer__buffer); this file only reads records out of it.
 *
 * Ring layout (linux/perf_event.h): page 0 is struct perf_event_mmap_page, with
 * data_head (written by the kernel) at byte 1024 and data_tail (written by us)
 * at 1032; the data area follows, data_size bytes, a power of two.  Records are
 * 8-byte aligned and may wrap around the end of the data area.
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
