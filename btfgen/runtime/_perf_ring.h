/* Reading libbpf's mmap'ed perf rings: shared by the drain (_drain.c, which
 * copies samples into one buffer) and the record builder (_records.c, which
 * builds records straight from the ring and hands them to a callback).
 *
 * Ring layout (linux/perf_event.h): page 0 is struct perf_event_mmap_page, with
 * data_head (written by the kernel) at byte 1024 and data_tail (written by the
 * reader) at 1032; the data area follows, data_size bytes, a power of two.
 * Records are 8-byte aligned and may wrap around the end of the data area.
 */
#ifndef BTFGEN_PERF_RING_H
#define BTFGEN_PERF_RING_H

#include <stdint.h>
#include <string.h>

#define BTFGEN_PAGE_HEAD 1024
#define BTFGEN_PAGE_TAIL 1032
#define BTFGEN_RECORD_LOST 2
#define BTFGEN_RECORD_SAMPLE 9

struct btfgen_ring {
    char *base;          /* the mmap'ed header page; data starts at base + page_size */
    uint64_t page_size;
    uint64_t data_size;  /* bytes of the data area (power of two) */
};

/* How far ahead of the reader ring data is prefetched, in bytes.  The hardware
 * prefetcher stops at page boundaries, and ring pages that the kernel wrote on
 * another CPU, or before the reader slept, are cold: measured on the 2-vCPU
 * test VM, a 2000-record drain went from ~64 to ~40 us with 1-4 KB ahead. */
#define BTFGEN_PREFETCH_AHEAD 2048

/* Prefetch ring data BTFGEN_PREFETCH_AHEAD bytes past ring offset pos (mod size). */
static inline void btfgen_ring_prefetch(const char *data, uint64_t size, uint64_t pos)
{
    __builtin_prefetch(data + ((pos + BTFGEN_PREFETCH_AHEAD) & (size - 1)));
}

/* Copy len bytes at ring offset pos (mod size) to dst, across the wrap. */
static inline void btfgen_ring_copy(char *dst, const char *data, uint64_t size, uint64_t pos,
                                    uint64_t len)
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

/* One record of a ring, as btfgen_ring_next reads it. */
struct btfgen_perf_record {
    uint32_t type;
    uint32_t size;       /* the whole record, header included */
    uint32_t raw;        /* SAMPLE: the sample's size (within the record) */
    const char *sample;  /* SAMPLE: its bytes when contiguous in the ring, else NULL */
    uint64_t lost;       /* LOST: samples the kernel dropped */
};

/* Read the record at tail (tail < head), prefetching what follows it.  Returns
 * 0, or -1 when the ring is inconsistent (a size that cannot be): the reader
 * then stops. */
static inline int btfgen_ring_next(const char *data, uint64_t size, uint64_t tail,
                                   uint64_t head, struct btfgen_perf_record *rec)
{
    uint32_t hdr[3]; /* u32 type, u16 misc, u16 size; then a sample's u32 raw size */
    uint64_t off = tail & (size - 1);
    int contiguous = 0;
    btfgen_ring_prefetch(data, size, tail);
    if (off + 16 <= size) { /* header and raw size in place (the usual case) */
        memcpy(hdr, data + off, 12);
        contiguous = off + (hdr[1] >> 16) <= size;
    } else {
        btfgen_ring_copy((char *)hdr, data, size, tail, 12);
    }
    rec->type = hdr[0];
    rec->size = hdr[1] >> 16;
    if (rec->size < 8 || rec->size > head - tail)
        return -1;
    rec->raw = 0;
    rec->sample = NULL;
    rec->lost = 0;
    if (rec->type == BTFGEN_RECORD_SAMPLE) {
        if (rec->size >= 12)
            rec->raw = hdr[2] > rec->size - 12 ? rec->size - 12 : hdr[2];
        if (contiguous)
            rec->sample = data + off + 12;
    } else if (rec->type == BTFGEN_RECORD_LOST && rec->size >= 24) {
        uint64_t lost[2]; /* u64 id, u64 lost */
        btfgen_ring_copy((char *)lost, data, size, tail + 8, 16);
        rec->lost = lost[1];
    }
    return 0;
}

#endif
