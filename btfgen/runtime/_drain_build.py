"""cffi build script for ``btfgen.runtime._drain`` (the compiled perf / BPF ring drain).

Run by setuptools through ``cffi_modules`` in setup.py at ``pip install``; the C
code is ``_drain.c`` beside this file and needs only libc headers.  The runtime
falls back to a pure-Python drain when the extension is missing.
"""

from __future__ import annotations

from pathlib import Path

from cffi import FFI

CDEF = """
struct btfgen_ring { char *base; uint64_t page_size; uint64_t data_size; };
struct btfgen_drain_out {
    char *data; uint64_t data_size; uint32_t *sizes; uint32_t max_records;
    uint32_t *ring_counts; uint64_t *ring_lost;
    uint32_t count; uint64_t used; uint32_t short_count; uint32_t more;
    uint64_t lost; int32_t only_ring; uint64_t done; uint64_t done_bytes;
};
int btfgen_poll(int epoll_fd, struct btfgen_ring *rings, int nrings,
                struct btfgen_drain_out *out, int timeout_ms, uint32_t stride, uint32_t limit);
struct btfgen_ringbuf { uint64_t *consumer_pos; uint64_t *producer_pos; const char *data;
                        uint64_t data_size; };
int btfgen_ringbuf_poll(int epoll_fd, struct btfgen_ringbuf *rb, struct btfgen_drain_out *out,
                        int timeout_ms, uint32_t stride, uint32_t limit);
uint64_t btfgen_ringbuf_pending(struct btfgen_ringbuf *rb);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
# optional: a machine without a C compiler or Python headers still installs btfgen
# (setuptools skips the extension and the runtime uses libbpf's callbacks instead).
HERE = Path(__file__).resolve().parent
ffibuilder.set_source("btfgen.runtime._drain", (HERE / "_drain.c").read_text(),
                      include_dirs=[str(HERE)],
                      depends=[str(HERE / "_perf_ring.h"), str(HERE / "_bpf_ringbuf.h")],
                      extra_compile_args=["-O2"], optional=True)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
