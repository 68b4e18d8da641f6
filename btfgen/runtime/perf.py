"""Perf buffers: a PERF_EVENT_ARRAY map's per-CPU rings, records decoded.

A :class:`PerfBuffer` delivers ``callback(cpu, record)`` and counts what the
kernel dropped (:attr:`PerfBuffer.lost`, ``lost_callback``); without a callback,
records queue up and the buffer is a blocking iterator (``for cpu, rec in pb``) and an
asyncio one.  Perf samples are padded to 8 bytes by the kernel, and programs
sending a struct followed by packet bytes (``bpf_perf_event_output`` with
``BPF_F_CTXLEN_MASK``) make them longer still: opened with ``payload=True``, a
buffer delivers each record as a :class:`~btfgen.runtime.reader.WithPayload`.

How records are delivered, what an interrupted poll guarantees, threads and
fork: see :mod:`btfgen.runtime.reader`.
"""

from __future__ import annotations

import errno
import os
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from btfgen.runtime import drain as _drain
from btfgen.runtime import records_fast
from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.errors import BpfError, error_class
from btfgen.runtime.maps import MapBase
from btfgen.runtime.native import check_ptr, close_fd, take
from btfgen.runtime.protocols import Codec, as_codec
from btfgen.runtime.reader import _PAGE_SIZE, Reader, ReaderNative, WithPayload, _Process

R = TypeVar("R")
T = TypeVar("T")

PERF_RECORD_LOST, PERF_RECORD_SAMPLE = 2, 9
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW = 1, 10, 1 << 10
LIBBPF_PERF_EVENT_CONT = -2
_PERF_ATTR_WATERMARK = 1 << 14
_HDR = struct.Struct("<IHHI")  # perf_event_header + the sample's u32 raw size
_LOST = struct.Struct("<QQ")
#: read_format asking read() of a perf event fd for the samples it dropped (Linux 6.0)
PERF_FORMAT_LOST = 1 << 4
_COUNTERS = struct.Struct("<QQ")  # read(): the event's count, then its lost samples
#: Polls that deliver records re-read the kernel's loss counters at most this often (s).
LOSS_CHECK_INTERVAL = 1.0
#: The largest ring accepted (bytes per CPU).
MAX_RING_BYTES = 1 << 30

# libbpf's per-ring perf buffer calls (this module's own declarations)
ffi.cdef("""
int perf_buffer__buffer_fd(const struct perf_buffer *pb, size_t buf_idx);
int perf_buffer__consume_buffer(struct perf_buffer *pb, size_t buf_idx);
""")

_callback_ptr: list[Any] = []


def _on_perf_event(ctx: Any, cpu: int, event: Any) -> int:
    """libbpf's per-record callback (no compiled drain, consume_buffer)."""
    pb: PerfBuffer[Any] = ffi.from_handle(ctx)
    try:
        # one copy of the whole event (header, size, sample): cheaper than cffi views
        data = ffi.unpack(ffi.cast("char *", event), event.size)
        etype, _misc, _size, raw = _HDR.unpack_from(data)
        if etype == PERF_RECORD_SAMPLE:
            if pb._sink is not None:  # read_batch() without the compiled drain
                pb._sink.append((cpu, data[12:12 + raw]))
                pb.received += 1
                return LIBBPF_PERF_EVENT_CONT
            rec = pb._record(data, 12, raw)
            pb.received += 1
            if rec is ...:  # could not decode: reported
                pass
            elif pb._callback is None:
                pb._queue.append((cpu, rec))
            else:
                pb._callback(cpu, rec)
        elif etype == PERF_RECORD_LOST:
            _id, lost = _LOST.unpack_from(data, 8)
            pb._lost_records[pb._cpus.index(cpu)] += lost
            pb._report_lost()
    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
        pb._fail(e)
    return LIBBPF_PERF_EVENT_CONT


def _perf_callback() -> Any:
    if not _callback_ptr:
        lib()
        _callback_ptr.append(ffi.callback("int(void *, int, struct perf_event_header *)",
                                          _on_perf_event))
    return _callback_ptr[0]


class _PerfNative(ReaderNative):
    """libbpf's perf_buffer over a duplicate of the map fd, closed after the free:
    a free delayed by a running poll (destroy() from a callback) then deletes
    this map's entries, never those of a map that reused the fd number."""

    def __init__(self, ptr: Any, map_fd: int) -> None:
        super().__init__(ptr, "perf_buffer__free")
        self.map_fd = map_fd
        #: Held to read the rings' perf event fds (``lost``) and to free them.
        self.lock = threading.RLock()

    def close(self) -> None:
        with self.lock:
            super().close()

    def closed(self) -> None:
        close_fd(take(self, "map_fd", -1))


class PerfBuffer(Reader[R]):
    """Per-CPU perf ring buffers of a PERF_EVENT_ARRAY map.

    ``callback(cpu, record)`` per sample, ``lost_callback(cpu, count)`` per loss
    report; :attr:`lost` is the total of samples the kernel dropped.
    ``wakeup_events=N`` (or ``wakeup_bytes=B``) makes the kernel wake the reader
    every N samples (B bytes) instead of every one, which costs the traced
    program much less; ``poll()`` drains whatever is waiting when its timeout
    expires, so records wait at most that long.  ``drain=False`` forces
    libbpf's per-record callback even when the compiled drain is built.
    """

    _kind: ClassVar[str] = "perf buffer"
    _native: _PerfNative
    _header: ClassVar[int] = 12  # perf_event_header + the u32 raw size

    def __init__(self, handle: MapPtr, codec: Codec[R] | None,
                 callback: Callable[[int, Any], Any] | None,
                 lost_callback: Callable[[int, int], Any] | None = None, page_count: int = 64,
                 cpus: Sequence[int] | None = None, wakeup_events: int = 1,
                 payload: bool = False, wakeup_bytes: int = 0, drain: bool = True) -> None:
        what = f"perf buffer {handle.name}"
        if (not isinstance(page_count, int) or page_count <= 0
                or page_count & (page_count - 1)):
            raise ValueError(f"{what}: page_count must be a power of two, not {page_count}")
        if page_count * _PAGE_SIZE > MAX_RING_BYTES:
            raise ValueError(f"{what}: page_count={page_count} makes {page_count * _PAGE_SIZE} "
                             f"bytes per CPU, more than the {MAX_RING_BYTES} allowed")
        if not 0 <= wakeup_events < 1 << 32:
            raise ValueError(f"{what}: wakeup_events must be 0 .. 2**32-1, not {wakeup_events}")
        if wakeup_bytes < 0 or wakeup_bytes >= page_count * _PAGE_SIZE:
            raise ValueError(f"{what}: wakeup_bytes must be 0 or more and below the buffer "
                             f"size ({page_count * _PAGE_SIZE}), not {wakeup_bytes}")
        cpu_list = list(cpus) if cpus is not None else None
        if cpu_list is not None:
            online = set(_drain.online_cpus())
            bad = [c for c in cpu_list if not isinstance(c, int) or c not in online]
            if bad or not cpu_list or len(set(cpu_list)) != len(cpu_list):
                raise ValueError(f"{what}: cpus must be distinct online CPUs "
                                 f"({sorted(online)}), not {cpu_list}")
        self._init_common(handle, codec, callback, payload)
        self._check_fits(page_count * _PAGE_SIZE, f" (page_count={page_count}: use a larger "
                         "power of two)")
        self._lost_callback = lost_callback
        self._handle_ref = ffi.new_handle(self)
        attr = ffi.new("struct perf_event_attr *")
        attr.type = PERF_TYPE_SOFTWARE
        attr.size = ffi.sizeof("struct perf_event_attr")
        attr.config = PERF_COUNT_SW_BPF_OUTPUT
        attr.sample_type = PERF_SAMPLE_RAW
        attr.sample_period = 1
        attr.read_format = PERF_FORMAT_LOST
        if wakeup_bytes:
            attr.flags = _PERF_ATTR_WATERMARK
            attr.wakeup_events = wakeup_bytes  # a union with wakeup_watermark
        else:
            attr.wakeup_events = max(1, wakeup_events)
        #: True when poll() waits for more than one sample: it then drains on timeout.
        self._batched_wakeup = bool(wakeup_bytes) or wakeup_events > 1
        opts = ffi.new("struct perf_buffer_raw_opts *")
        opts.sz = ffi.sizeof("struct perf_buffer_raw_opts")
        if cpu_list is not None:
            arr = ffi.new("int[]", cpu_list)
            opts.cpu_cnt = len(cpu_list)
            opts.cpus = arr
            opts.map_keys = arr
        map_fd = os.dup(handle.fd)
        try:
            ptr = self._open(handle.name, map_fd, page_count, attr, opts)
        except BaseException:
            os.close(map_fd)
            raise
        self._native = _PerfNative(ptr, map_fd)
        self._owner.own(self._native)
        count = int(lib().perf_buffer__buffer_cnt(ptr))
        # libbpf opens ring i for cpus[i], or for the i-th online CPU.
        self._cpus = cpu_list if cpu_list is not None else _drain.online_cpus()
        self._ring_cpus = tuple(self._cpus)
        use_drain = (drain and _drain.AVAILABLE and records_fast.AVAILABLE
                     and len(self._cpus) == count)
        rings = _drain.RingSet(ptr, count, _PAGE_SIZE) if use_drain else None
        #: Per ring: lost samples from loss records libbpf's callback saw,
        #: the kernel's loss counters as last read, and what lost_callback was told.
        self._lost_records = [0] * count
        self._lost_kernel = [0] * count
        self._lost_told = [0] * count
        #: The rings' perf event fds, read for their loss counters (None: the
        #: kernel has none, so losses are known from loss records only).
        self._counter_fds: list[int] | None = None
        if attr.read_format:
            self._counter_fds = [int(lib().perf_buffer__buffer_fd(ptr, i)) for i in range(count)]
        self._next_loss_check = time.monotonic() + LOSS_CHECK_INTERVAL
        self._delivered_since_check = False
        self._choose(rings)

    def _open(self, name: str, map_fd: int, page_count: int, attr: Any, opts: Any) -> Any:
        """perf_buffer__new_raw, asking for loss counters; without them on kernels
        older than 6.0 (which refuse that read_format)."""
        def new() -> Any:
            return check_ptr(f"open perf buffer on map {name}",
                             lambda: lib().perf_buffer__new_raw(map_fd, page_count, attr,
                                                                _perf_callback(),
                                                                self._handle_ref, opts))
        try:
            return new()
        except BpfError as e:
            if e.errno != errno.EINVAL:
                raise
        attr.read_format = 0
        return new()

    @property
    def lost(self) -> int:
        """Samples the kernel could not write to the rings (they were full), so far.

        On Linux 6.0 and later this is the kernel's own count at the moment you
        read it, so ``received + lost`` equals what the program sent once the
        rings are drained.  Older kernels only tell of a loss with a loss
        record, which they write when that CPU next writes a sample: until
        then ``lost`` is short.  ``lost_callback(cpu, count)`` hears of each
        loss once: when a poll meets a loss record, when a poll finds nothing
        after others delivered records, and at least once a second of polling.
        Reading ``lost`` costs a read() per CPU (tens of microseconds in a VM,
        where the kernel asks the ring's CPU)."""
        return sum(self._lost_per_ring())

    def _lost_per_ring(self) -> list[int]:
        fds = self._counter_fds
        if fds is None:
            rings = self._rings
            records = self._lost_records
            if rings is None:
                return list(records)
            return [a + b for a, b in zip(rings.lost_counts(), records, strict=True)]
        native = self._native
        with native.lock:  # the fds are libbpf's: not freed while we read them
            counts = self._lost_kernel
            for i, fd in enumerate(fds):
                # checked per fd: a signal handler may destroy() the buffer meanwhile
                if native.ptr is None or native.pid != _Process.pid:
                    break
                raw = os.read(fd, _COUNTERS.size)
                if len(raw) == _COUNTERS.size:
                    counts[i] = _COUNTERS.unpack(raw)[1]
        return list(self._lost_kernel)

    def _libbpf_fn(self, what: str) -> Any:
        return getattr(lib(), f"perf_buffer__{what}")

    def _poll_libbpf(self, timeout_ms: int) -> None:
        n = self._libbpf_call("poll", timeout_ms) if timeout_ms else 0
        if n == 0 and (self._batched_wakeup or not timeout_ms):
            self._libbpf_call("consume")  # timed out: take what did not wake us

    def _deliver_direct(self, rings: _drain.DrainBuffer, timeout_ms: int) -> tuple[int, int]:
        assert isinstance(rings, _drain.RingSet) and self._bulk is not None
        total, lost, stopped = self._bulk.perf_deliver(
            rings.rings_addr, rings.count, self._ring_cpus, self._stride, self._callback,
            self._fail, rings.lost_addr, rings.epoll_fd, timeout_ms)
        self.received += total
        if lost:
            self._report_lost()
        return total, stopped

    def _segments(self, rings: _drain.DrainBuffer, n: int) -> list[tuple[Any, int]]:
        only = rings.out.only_ring
        if only >= 0:
            return [(self._cpus[only], n)]
        return [(self._cpus[r], c) for r, c in enumerate(rings.ring_counts()) if c]

    def _polled(self, delivered: int) -> None:
        # Losses happen only while a ring is full, so records follow them: the
        # first poll finding nothing after some were delivered reads the
        # counters (and the clock bounds the wait under a steady stream).
        if delivered:
            self._delivered_since_check = True
            if time.monotonic() < self._next_loss_check:
                return
        elif not self._delivered_since_check and time.monotonic() < self._next_loss_check:
            return
        self._report_lost()

    def _report_lost(self) -> None:
        """Tell lost_callback of losses not told yet (under the poll lock)."""
        self._next_loss_check = time.monotonic() + LOSS_CHECK_INTERVAL
        self._delivered_since_check = False
        told = self._lost_told
        for i, count in enumerate(self._lost_per_ring()):
            new = count - told[i]
            if new > 0:
                told[i] = count
                if self._lost_callback is not None:
                    try:
                        self._lost_callback(self._cpus[i], new)
                    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
                        self._fail(e)

    @property
    def buffer_count(self) -> int:
        """Number of per-CPU rings (libbpf ``perf_buffer__buffer_cnt``)."""
        return int(lib().perf_buffer__buffer_cnt(self._live_ptr()))

    def buffer_fd(self, index: int) -> int:
        """The perf event fd of ring ``index`` (libbpf ``perf_buffer__buffer_fd``)."""
        self._check_index(index)
        fd = int(lib().perf_buffer__buffer_fd(self._live_ptr(), index))
        if fd < 0:
            raise error_class(fd)(f"{self._what}: buffer_fd({index})", fd)
        return fd

    def consume_buffer(self, index: int) -> int:
        """Deliver what ring ``index`` holds, without blocking (libbpf
        ``perf_buffer__consume_buffer``); the record count.  Records an
        interrupted poll left behind come first."""
        self._check_index(index)

        def work(_timeout: int, nested: bool) -> int:
            total = 0
            rings = self._rings
            if rings is not None and rings.out.done < rings.out.count:
                total = self._deliver_copied(rings)
            before = self.received
            if nested and rings is not None:
                raise RuntimeError(f"{self._what}: consume_buffer from its own callback")
            rc = int(lib().perf_buffer__consume_buffer(self._native.ptr, index))
            if rc < 0:
                raise error_class(rc)(f"{self._what}: consume_buffer({index})", rc)
            return total + self.received - before

        return self._locked(0, work, 0)

    def _check_index(self, index: int) -> None:
        count = self.buffer_count
        if not isinstance(index, int) or not 0 <= index < count:
            raise IndexError(f"{self._what}: ring index {index} out of range 0..{count - 1}")

    def _live_ptr(self) -> Any:
        native = self._native
        if native.ptr is None or native.pid != _Process.pid:
            self._refuse()
        return native.ptr

    def __iter__(self) -> Iterator[tuple[int, R]]:
        """Block and yield ``(cpu, record)`` forever (buffer opened without callback)."""
        return self._iter_queue(100)

    def __aiter__(self) -> AsyncIterator[tuple[int, R]]:
        """``async for cpu, record in pb`` (buffer opened without callback)."""
        return self._aiter_queue()


class PerfEventArray(MapBase, Generic[R]):
    """A BPF_MAP_TYPE_PERF_EVENT_ARRAY whose samples decode as ``R``
    (``bytes`` when the skeleton knew no record type: see ``with_record``)."""

    def __init__(self, handle: MapPtr, record: Codec[R] | None = None) -> None:
        super().__init__(handle)
        self.record_codec = record

    @overload
    def with_record(self, record: Codec[T]) -> PerfEventArray[T]: ...

    @overload
    def with_record(self, record: type[T]) -> PerfEventArray[T]: ...

    def with_record(self, record: Any) -> PerfEventArray[Any]:
        """This map with samples decoded by ``record`` (a codec or record class)."""
        return PerfEventArray(self._h, as_codec(record))

    @overload
    def open_perf_buffer(self, callback: Callable[[int, R], object] | None = None,
                         lost_callback: Callable[[int, int], object] | None = None,
                         page_count: int = 64, cpus: Sequence[int] | None = None, *,
                         wakeup_events: int = 1, wakeup_bytes: int = 0, drain: bool = True,
                         payload: Literal[False] = False) -> PerfBuffer[R]: ...

    @overload
    def open_perf_buffer(self, callback: Callable[[int, WithPayload[R]], object] | None = None,
                         lost_callback: Callable[[int, int], object] | None = None,
                         page_count: int = 64, cpus: Sequence[int] | None = None, *,
                         wakeup_events: int = 1, wakeup_bytes: int = 0, drain: bool = True,
                         payload: Literal[True]) -> PerfBuffer[WithPayload[R]]: ...

    def open_perf_buffer(self, callback: Callable[[int, Any], object] | None = None,
                         lost_callback: Callable[[int, int], object] | None = None,
                         page_count: int = 64, cpus: Sequence[int] | None = None, *,
                         wakeup_events: int = 1, wakeup_bytes: int = 0, drain: bool = True,
                         payload: bool = False) -> PerfBuffer[Any]:
        """Open per-CPU buffers (``page_count`` pages each, a power of two, on
        ``cpus`` or all online CPUs) and deliver decoded records to
        ``callback(cpu, record)``.

        Without a callback, iterate over the buffer instead.  ``payload=True``
        delivers :class:`WithPayload` (the record and the bytes after it);
        ``wakeup_events`` wakes the reader every N samples instead of every one
        (``wakeup_bytes``: every B bytes); ``poll(timeout)`` still delivers what
        is waiting when the timeout expires.  ``drain=False`` uses libbpf's
        per-record callback instead of the compiled drain.  A record that can
        never fit a ring raises ValueError here.
        """
        return PerfBuffer(self._h, self.record_codec, callback, lost_callback, page_count, cpus,
                          wakeup_events, payload, wakeup_bytes, drain)

