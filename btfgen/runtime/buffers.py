"""Perf and ring buffers: libbpf drains them, records arrive decoded.

A :class:`PerfBuffer` delivers ``callback(cpu, record)``; a :class:`RingBuffer`
delivers ``callback(record)``.  Without a callback, records queue up and the
buffer is a blocking iterator (``for cpu, rec in pb``) and an asyncio one
(``async for ...``).  An exception raised by a callback comes out of ``poll()``
/ ``consume()``; the buffer stays usable.

Perf samples are padded to 8 bytes by the kernel, and programs sending a struct
followed by packet bytes (``bpf_perf_event_output`` with ``BPF_F_CTXLEN_MASK``)
make them longer still: when a sample is longer than the record, the record is
delivered as a :class:`WithPayload` of the record, with the trailing bytes (up to
the 8-byte padding, which the program should let the reader cut off, e.g. with a
length field) as ``.payload``.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr, Native, check_ptr
from btfgen.runtime.errors import _add_note, error_class
from btfgen.runtime.maps import MapBase
from btfgen.runtime.protocols import Codec

R = TypeVar("R")

PERF_RECORD_LOST, PERF_RECORD_SAMPLE = 2, 9
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW = 1, 10, 1 << 10
LIBBPF_PERF_EVENT_CONT = -2
_PERF_ATTR_WATERMARK = 1 << 14
_HDR = struct.Struct("<IHHI")  # perf_event_header + the sample's u32 raw size
_LOST = struct.Struct("<QQ")


class WithPayload(Generic[R]):
    """A decoded record plus the bytes that followed it in the sample."""

    __slots__ = ("record", "payload")

    def __init__(self, record: R, payload: bytes) -> None:
        self.record = record
        self.payload = payload

    def __getattr__(self, name: str) -> Any:
        return getattr(self.record, name)

    def __repr__(self) -> str:
        return f"WithPayload({self.record!r}, payload={len(self.payload)} bytes)"


class _Reader(Generic[R]):
    """Shared poll/consume/iterate/exception plumbing."""

    _native: Native
    _queue: collections.deque[Any]

    def _init_common(self, codec: Codec[R] | None, callback: Callable[..., Any] | None) -> None:
        self._codec = codec
        self._size = codec.size if codec is not None else 0
        self._decode = codec.decode if codec is not None else None
        self._callback = callback
        self._queue = collections.deque()
        self._error: BaseException | None = None
        self._more_errors = 0
        #: Records delivered so far.
        self.received = 0

    def _record(self, data: memoryview) -> Any:
        if self._decode is None:
            return bytes(data)
        if len(data) > self._size + 7 or (len(data) > self._size and self._payload_always):
            return WithPayload(self._decode(data), bytes(data[self._size:]))
        return self._decode(data)

    _payload_always = False

    def _fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        else:
            self._more_errors += 1

    def _raise_pending(self) -> None:
        exc, self._error = self._error, None
        if exc is not None:
            if self._more_errors:
                _add_note(exc, f"{self._more_errors} more callback exceptions in the same poll")
            self._more_errors = 0
            raise exc

    def _ptr(self) -> Any:
        if self._native.ptr is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._native.ptr

    def _run(self, what: str, fn: str, *args: Any) -> int:
        rc = int(getattr(lib(), fn)(self._ptr(), *args))
        self._raise_pending()
        if rc < 0 and rc != -4:  # EINTR: a signal; Python's handler runs on return
            raise error_class(rc)(f"{type(self).__name__}: {what}", rc)
        return max(rc, 0)

    def fileno(self) -> int:
        """The epoll fd: readable when records are waiting (for selectors/asyncio)."""
        return int(getattr(lib(), self._epoll_fn)(self._ptr()))

    _epoll_fn = ""

    @property
    def closed(self) -> bool:
        """True after close()."""
        return self._native.ptr is None

    def _iter_queue(self, timeout_ms: int) -> Iterator[Any]:
        if self._callback is not None:
            raise TypeError("iteration needs a buffer opened without a callback")
        return self._iter_forever(timeout_ms)

    def _iter_forever(self, timeout_ms: int) -> Iterator[Any]:
        while True:
            while self._queue:
                yield self._queue.popleft()
            self.poll(timeout_ms)  # type: ignore[attr-defined]

    async def _aiter_queue(self) -> AsyncIterator[Any]:
        if self._callback is not None:
            raise TypeError("iteration needs a buffer opened without a callback")
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        fd = self.fileno()
        loop.add_reader(fd, ready.set)
        try:
            while True:
                self.consume()  # type: ignore[attr-defined]
                while self._queue:
                    yield self._queue.popleft()
                ready.clear()
                self.consume()  # type: ignore[attr-defined]
                if not self._queue:
                    await ready.wait()
        finally:
            loop.remove_reader(fd)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # type: ignore[attr-defined]


def _on_perf_event(ctx: Any, cpu: int, event: Any) -> int:
    pb: PerfBuffer[Any] = ffi.from_handle(ctx)
    try:
        etype, _misc, size, raw = _HDR.unpack(ffi.buffer(event, 12))
        if etype == PERF_RECORD_SAMPLE:
            rec = pb._record(memoryview(ffi.buffer(ffi.cast("char *", event) + 12, raw)))
            pb.received += 1
            if pb._callback is None:
                pb._queue.append((cpu, rec))
            else:
                pb._callback(cpu, rec)
        elif etype == PERF_RECORD_LOST:
            _id, lost = _LOST.unpack(ffi.buffer(ffi.cast("char *", event) + 8, 16))
            pb.lost += lost
            if pb._lost_callback is not None:
                pb._lost_callback(cpu, lost)
    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
        pb._fail(e)
    return LIBBPF_PERF_EVENT_CONT


_perf_event = ffi.callback("int(void *, int, struct perf_event_header *)", _on_perf_event)


class PerfBuffer(_Reader[R]):
    """Per-CPU perf ring buffers of a PERF_EVENT_ARRAY map, drained by libbpf.

    ``callback(cpu, record)`` per sample, ``lost_callback(cpu, count)`` per loss
    report; ``lost`` is the running total of samples the kernel dropped.
    """

    _epoll_fn = "perf_buffer__epoll_fd"

    def __init__(self, handle: MapPtr, codec: Codec[R] | None,
                 callback: Callable[[int, Any], Any] | None,
                 lost_callback: Callable[[int, int], Any] | None = None, page_count: int = 64,
                 cpus: Sequence[int] | None = None, wakeup_events: int = 1,
                 payload: bool = False) -> None:
        handle.owner.check_loaded()
        if page_count <= 0 or page_count & (page_count - 1):
            raise ValueError(f"page_count must be a power of two, not {page_count}")
        self._init_common(codec, callback)
        self._payload_always = payload
        self._lost_callback = lost_callback
        #: Samples the kernel could not write (ring full), as reported so far.
        self.lost = 0
        self._handle_ref = ffi.new_handle(self)
        attr = ffi.new("struct perf_event_attr *")
        attr.type = PERF_TYPE_SOFTWARE
        attr.size = ffi.sizeof("struct perf_event_attr")
        attr.config = PERF_COUNT_SW_BPF_OUTPUT
        attr.sample_type = PERF_SAMPLE_RAW
        attr.sample_period = 1
        attr.wakeup_events = max(1, wakeup_events)
        opts = ffi.new("struct perf_buffer_raw_opts *")
        opts.sz = ffi.sizeof("struct perf_buffer_raw_opts")
        keep = []
        if cpus is not None:
            cpu_list = list(cpus)
            arr = ffi.new("int[]", cpu_list)
            keep.append(arr)
            opts.cpu_cnt = len(cpu_list)
            opts.cpus = arr
            opts.map_keys = arr
        ptr = check_ptr(f"open perf buffer on map {handle.name}",
                        lambda: lib().perf_buffer__new_raw(handle.fd, page_count, attr,
                                                           _perf_event, self._handle_ref, opts))
        self._native = Native(ptr, "perf_buffer__free")
        self._owner = handle.owner
        self._owner.own(self._native)
        #: The map this buffer reads.
        self.map_name = handle.name

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records and deliver them."""
        return self._run("poll", "perf_buffer__poll", timeout_ms)

    def consume(self) -> int:
        """Deliver whatever is waiting, without blocking."""
        return self._run("consume", "perf_buffer__consume")

    @property
    def buffer_count(self) -> int:
        """Number of per-CPU buffers."""
        return int(lib().perf_buffer__buffer_cnt(self._ptr()))

    def close(self) -> None:
        """Free the buffers and their fds (idempotent)."""
        self._native.close()
        self._owner.disown(self._native)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        """Block and yield ``(cpu, record)`` forever (buffer opened without callback)."""
        return self._iter_queue(100)

    def __aiter__(self) -> AsyncIterator[tuple[int, Any]]:
        """``async for cpu, record in pb`` (buffer opened without callback)."""
        return self._aiter_queue()


def _on_ring_sample(ctx: Any, data: Any, size: int) -> int:
    rb: RingBuffer[Any] = ffi.from_handle(ctx)
    try:
        rec = rb._record(memoryview(ffi.buffer(data, size)))
        rb.received += 1
        if rb._callback is None:
            rb._queue.append(rec)
        else:
            rb._callback(rec)
    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
        rb._fail(e)
        return -1  # libbpf stops here; the sample is consumed, the rest stays queued
    return 0


_ring_sample = ffi.callback("int(void *, void *, size_t)", _on_ring_sample)


class RingBuffer(_Reader[R]):
    """A BPF_MAP_TYPE_RINGBUF drained by libbpf; ``callback(record)`` per record.

    There is no lost count here: when the ring is full, the kernel fails the
    program's reserve/output call instead.
    """

    _epoll_fn = "ring_buffer__epoll_fd"

    def __init__(self, handle: MapPtr, codec: Codec[R] | None,
                 callback: Callable[[Any], Any] | None, payload: bool = False) -> None:
        handle.owner.check_loaded()
        self._init_common(codec, callback)
        self._payload_always = payload
        self._handle_ref = ffi.new_handle(self)
        ptr = check_ptr(f"open ring buffer on map {handle.name}",
                        lambda: lib().ring_buffer__new(handle.fd, _ring_sample,
                                                       self._handle_ref, ffi.NULL))
        self._native = Native(ptr, "ring_buffer__free")
        self._owner = handle.owner
        self._owner.own(self._native)
        self.map_name = handle.name

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records and deliver them."""
        return self._run("poll", "ring_buffer__poll", timeout_ms)

    def consume(self) -> int:
        """Deliver whatever is waiting, without blocking."""
        return self._run("consume", "ring_buffer__consume")

    def close(self) -> None:
        """Free the ring buffer manager (idempotent)."""
        self._native.close()
        self._owner.disown(self._native)

    def __iter__(self) -> Iterator[Any]:
        """Block and yield records forever (buffer opened without callback)."""
        return self._iter_queue(100)

    def __aiter__(self) -> AsyncIterator[Any]:
        """``async for record in rb`` (buffer opened without callback)."""
        return self._aiter_queue()


class PerfEventArray(MapBase, Generic[R]):
    """A BPF_MAP_TYPE_PERF_EVENT_ARRAY whose samples decode as ``R``."""

    def __init__(self, handle: MapPtr, record: Codec[R] | None = None) -> None:
        super().__init__(handle)
        self.record_codec = record

    def open_perf_buffer(self, callback: Callable[[int, R], Any] | None = None,
                         lost_callback: Callable[[int, int], Any] | None = None,
                         page_count: int = 64, cpus: Sequence[int] | None = None, *,
                         wakeup_events: int = 1, record: Codec[Any] | None = None,
                         payload: bool = False) -> PerfBuffer[R]:
        """Open per-CPU buffers (``page_count`` pages each) and deliver decoded records.

        ``record`` overrides the record codec; ``payload=True`` always delivers
        :class:`WithPayload` (also for samples with only padding after the record);
        ``wakeup_events`` wakes the reader every N samples instead of every one.
        """
        codec = record if record is not None else self.record_codec
        return PerfBuffer(self._h, codec, callback, lost_callback, page_count, cpus,
                          wakeup_events, payload)


class RingBuf(MapBase, Generic[R]):
    """A BPF_MAP_TYPE_RINGBUF whose records decode as ``R``."""

    def __init__(self, handle: MapPtr, record: Codec[R] | None = None) -> None:
        super().__init__(handle)
        self.record_codec = record

    def open_ring_buffer(self, callback: Callable[[R], Any] | None = None, *,
                         record: Codec[Any] | None = None,
                         payload: bool = False) -> RingBuffer[R]:
        """Open the ring buffer and deliver decoded records to ``callback``."""
        codec = record if record is not None else self.record_codec
        return RingBuffer(self._h, codec, callback, payload)
