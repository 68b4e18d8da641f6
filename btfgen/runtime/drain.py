"""The compiled ring drain: many records per call, no Python per record.

``btfgen.runtime._drain`` (C, cffi API mode, built by ``pip install``; see
``_drain.c``) copies every sample waiting in libbpf's mmap'ed per-CPU perf rings
(:class:`RingSet`), or in a BPF ring buffer mapped here (:class:`RingbufSet`),
into one contiguous buffer per call, at a fixed stride (one record per slot) or
packed, and advances the rings' tails.  Python then decodes the whole buffer.

When the extension is missing (or ``BTFGEN_NO_DRAIN=1``), :data:`AVAILABLE` is
False and :class:`~btfgen.runtime.perf.PerfBuffer` and
:class:`~btfgen.runtime.ringbuf.RingBuffer` fall back to libbpf's per-record
callback, which works everywhere but costs a C -> Python call per record.
"""

from __future__ import annotations

import functools
import mmap
import os
import sys
from collections.abc import Callable
from typing import Any

from btfgen.runtime._libbpf import ffi as libbpf_ffi
from btfgen.runtime._libbpf import lib

_ext: Any
try:
    if os.environ.get("BTFGEN_NO_DRAIN"):
        raise ImportError("disabled by BTFGEN_NO_DRAIN")
    from btfgen.runtime import _drain as _ext  # type: ignore[attr-defined, no-redef, unused-ignore]
except ImportError as _e:
    _ext = None
    #: Why the compiled drain is not used (None when it is).
    UNAVAILABLE_REASON: str | None = str(_e)
else:
    UNAVAILABLE_REASON = None

#: True when the compiled drain is importable and enabled.
AVAILABLE = _ext is not None

#: Drain buffers kept for reuse per buffer (see DrainBuffer.drain).
_POOL = 3

#: Smallest perf record holding a sample: header (8) + raw size (4) + 4 bytes.
_MIN_RECORD = 16

#: Smallest BPF ring buffer record: its 8-byte header (an empty sample).
_MIN_RINGBUF_RECORD = 8


def online_cpus() -> list[int]:
    """The online CPUs, in order (libbpf opens one ring per online CPU)."""
    try:
        text = open("/sys/devices/system/cpu/online").read().strip()
    except OSError:
        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


class PooledBuffer:
    """One drain buffer: anonymous memory, cffi's pointer to it, and numpy arrays
    over all of it (made on demand, one per dtype) that batches slice."""

    __slots__ = ("mem", "ptr", "arrays", "free_refs")

    def __init__(self, ffi: Any, size: int) -> None:
        # Anonymous private memory, not a bytearray: its pages are zero-filled by
        # the kernel when first written, so a buffer sized for every ring at once
        # costs only what drains really use (a bytearray would zero all of it up
        # front: 8 MB for 1024-page rings on 2 CPUs, ~4 ms).  Private, not
        # mmap's default shared: a first write to a shared page costs ~2.4 us
        # on the test VM, to a private one ~1.6 us.
        self.mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.ptr = ffi.from_buffer("char[]", self.mem)
        #: Read-only numpy arrays over the whole buffer, by dtype: a batch's array
        #: is a slice of one (~0.5 us), numpy's frombuffer costs ~4 us a call
        #: (measured on the test VM, right after a poll).
        self.arrays: dict[Any, Any] = {}
        #: References to mem while nobody else holds it (as counted in held()).
        self.free_refs = sys.getrefcount(self.mem)

    def held(self) -> bool:
        """Whether something besides this object references the buffer: a batch,
        a view of its bytes, or an array on it (arrays slicing ours count too)."""
        arrays = self.arrays
        if sys.getrefcount(self.mem) > self.free_refs + len(arrays):  # + 1 per array of ours
            return True
        for a in arrays.values():
            if sys.getrefcount(a) > _ARRAY_FREE_REFS:
                return True
        return False

    def array(self, dtype: Any, count: int) -> Any:
        """The first ``count`` items of ``dtype`` in the buffer, read-only, without a copy."""
        full = self.arrays.get(dtype)
        if full is None:
            import numpy

            full = numpy.frombuffer(memoryview(self.mem).toreadonly(), dtype=dtype,
                                    count=len(self.mem) // dtype.itemsize)
            self.arrays[dtype] = full
        return full[:count]


#: References to one of PooledBuffer.arrays in held()'s loop: the dict's, the loop
#: variable's and getrefcount's argument.
_ARRAY_FREE_REFS = 3


class DrainBuffer:
    """The output side of a drain: a pooled data buffer, per-record sizes and the
    ``struct btfgen_drain_out`` the C drains fill (shared by perf and BPF rings).

    Subclasses call :meth:`_init_out` with their capacity and ring count."""

    out: Any
    count: int
    #: The C drain of this kind of ring into the current buffer:
    #: ``_poll(timeout_ms, stride, limit)``, its other arguments bound.
    _poll: Callable[[int, int, int], int]

    def _init_out(self, capacity: int, ring_count: int, min_record: int) -> None:
        assert _ext is not None
        ffi = self._ffi = _ext.ffi
        self._lib = _ext.lib
        #: Bytes of all rings together: one drain never copies more (more=1 past it).
        self.capacity = capacity
        #: Records one drain may copy at most (the sizes array's length).
        self.max_records = max_records = capacity // min_record
        self._sizes = ffi.new("uint32_t[]", max_records)
        self._counts = ffi.new("uint32_t[]", max(ring_count, 1))
        self._lost = ffi.new("uint64_t[]", max(ring_count, 1))
        out = ffi.new("struct btfgen_drain_out *")
        out.data_size = capacity
        out.sizes = self._sizes
        out.max_records = max_records
        out.ring_counts = self._counts
        out.ring_lost = self._lost
        self.out = out
        #: Addresses of the delivery cursor (out.done, out.done_bytes) and of the
        #: sizes array, for the record builders (records_fast.deliver).
        self.cursor_addr = int(ffi.cast("uintptr_t", ffi.addressof(out, "done")))
        self.sizes_addr = int(ffi.cast("uintptr_t", self._sizes))
        # A few buffers are pooled so a caller keeping the last batch does not
        # cost a fresh one (and its page faults) per drain.
        self._pool = [PooledBuffer(ffi, capacity)]
        self._use(self._pool[0])

    def _use(self, buf: PooledBuffer) -> None:
        #: The buffer the next drain writes into (and the last one wrote).
        self.current = buf
        self.out.data = buf.ptr

    def drain(self, timeout_ms: int, stride: int, limit: int = 0) -> int:
        """Wait (GIL released) unless ``timeout_ms`` is 0, then drain at most
        ``limit`` records (0: as many as the buffer holds; at most
        :attr:`max_records`) into a free buffer; the record count or -errno.

        A buffer is reused only while nothing references it: once a view of the
        last drain (see :meth:`view`; or a numpy array on it) is alive, the next
        drain writes into another."""
        if self.current.held():
            self._switch_buffer()
        return self._poll(timeout_ms, stride, limit)

    def view(self, end: int, start: int = 0) -> memoryview:
        """Bytes ``start`` up to ``end`` the last drain wrote, without a copy (read-only)."""
        return memoryview(self.current.mem).toreadonly()[start:end]

    def _switch_buffer(self) -> None:
        """Move to a pooled buffer nobody references, or to a fresh one."""
        for buf in self._pool:
            if buf is not self.current and not buf.held():
                self._use(buf)
                return
        buf = PooledBuffer(self._ffi, self.capacity)
        self._pool.append(buf)
        if len(self._pool) > _POOL:  # every pooled buffer is held: forget the oldest
            self._pool.pop(0)
        self._use(buf)

    def sizes(self) -> list[int]:
        """Raw sample size of each record of the last drain."""
        return self._ffi.unpack(self._sizes, self.out.count)  # type: ignore[no-any-return]

    def ring_counts(self) -> list[int]:
        """Records per ring in the last drain."""
        return self._ffi.unpack(self._counts, self.count)  # type: ignore[no-any-return]

    def lost_counts(self) -> list[int]:
        """Lost samples reported per ring so far (the C readers add to them)."""
        return self._ffi.unpack(self._lost, self.count)  # type: ignore[no-any-return]


class RingSet(DrainBuffer):
    """The rings of one libbpf ``struct perf_buffer`` and a drain buffer for them."""

    def __init__(self, pb_ptr: Any, count: int, page_size: int) -> None:
        assert _ext is not None
        ffi = _ext.ffi
        self.count = count
        self.rings = ffi.new("struct btfgen_ring[]", max(count, 1))
        total = 0
        #: The largest ring's data size (bytes).
        self.ring_size = 0
        base = libbpf_ffi.new("void **")
        size = libbpf_ffi.new("size_t *")
        for i in range(count):
            rc = lib().perf_buffer__buffer(pb_ptr, i, base, size)
            if rc < 0:
                continue  # left NULL: the drain skips it
            self.rings[i].base = ffi.cast("char *", int(libbpf_ffi.cast("uintptr_t", base[0])))
            self.rings[i].page_size = page_size
            self.rings[i].data_size = size[0]
            total += int(size[0])
            self.ring_size = max(self.ring_size, int(size[0]))
        self._init_out(max(total, page_size), count, _MIN_RECORD)
        self.epoll_fd = int(lib().perf_buffer__epoll_fd(pb_ptr))
        #: Addresses of the ring table and the per-ring lost counters, for C
        #: readers outside this extension (records_fast's perf_deliver).
        self.rings_addr = int(ffi.cast("uintptr_t", self.rings))
        self.lost_addr = int(ffi.cast("uintptr_t", self._lost))
        # bound once: no Python frame between a drain and the C call
        self._poll = functools.partial(self._lib.btfgen_poll, self.epoll_fd, self.rings,
                                       self.count, self.out)


def map_max_entries(map_fd: int) -> int:
    """A map's max_entries as the kernel has it (for a ring buffer: its data size)."""
    with open(f"/proc/self/fdinfo/{map_fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "max_entries":
                return int(value)
    raise OSError(f"no max_entries in /proc/self/fdinfo/{map_fd}")


class RingbufSet(DrainBuffer):
    """A BPF_MAP_TYPE_RINGBUF mapped here, and a drain buffer for it.

    libbpf 1.1 does not hand out its own mapping of the ring, so the map fd is
    mapped again: the consumer page read-write, the producer page and the data
    area (mapped twice in a row by the kernel) read-only.  :meth:`close` unmaps
    them (the mmap module holds a duplicate of the map fd until then).
    """

    count = 1

    def __init__(self, map_fd: int, epoll_fd: int, page_size: int) -> None:
        assert _ext is not None
        ffi = _ext.ffi
        data_size = map_max_entries(map_fd)
        if data_size <= 0 or data_size & (data_size - 1):
            raise ValueError(f"ring buffer size {data_size} is not a power of two")
        self._ffi = ffi
        self._maps: list[mmap.mmap] = []
        self._views: list[Any] = []
        try:
            consumer = self._map(map_fd, page_size, 0, mmap.PROT_READ | mmap.PROT_WRITE)
            producer = self._map(map_fd, page_size + 2 * data_size, page_size, mmap.PROT_READ)
        except BaseException:
            self.close()
            raise
        rb = self.ringbuf = ffi.new("struct btfgen_ringbuf *")
        rb.consumer_pos = ffi.cast("uint64_t *", consumer)
        rb.producer_pos = ffi.cast("uint64_t *", producer)
        rb.data = producer + page_size
        rb.data_size = data_size
        #: The ring's data size (bytes).
        self.ring_size = data_size
        #: Addresses of consumer_pos, producer_pos and the data area, and the data
        #: size, for C readers outside this extension (records_fast's ringbuf_deliver).
        self.addresses = (int(ffi.cast("uintptr_t", rb.consumer_pos)),
                          int(ffi.cast("uintptr_t", rb.producer_pos)),
                          int(ffi.cast("uintptr_t", rb.data)), data_size)
        self._init_out(max(data_size, page_size), 1, _MIN_RINGBUF_RECORD)
        self.epoll_fd = epoll_fd

    def _map(self, fd: int, length: int, offset: int, prot: int) -> Any:
        m = mmap.mmap(fd, length, mmap.MAP_SHARED, prot, offset=offset)
        self._maps.append(m)
        view = self._ffi.from_buffer("char[]", m)
        self._views.append(view)
        return view

    def check_open(self) -> None:
        """Raise ValueError once :meth:`close` has unmapped the ring."""
        if not self._maps:
            raise ValueError("ring buffer mapping is closed")

    def _poll(self, timeout_ms: int, stride: int, limit: int) -> int:
        self.check_open()
        return self._lib.btfgen_ringbuf_poll(  # type: ignore[no-any-return]
            self.epoll_fd, self.ringbuf, self.out, timeout_ms, stride, limit)

    def pending(self) -> int:
        """Bytes between the consumer and producer positions."""
        self.check_open()
        return int(self._lib.btfgen_ringbuf_pending(self.ringbuf))

    def close(self) -> None:
        """Unmap the ring (idempotent)."""
        for view in self._views:
            self._ffi.release(view)  # the mmap cannot close while cffi exports it
        self._views.clear()
        for m in self._maps:
            m.close()
        self._maps.clear()
