"""Perf and ring buffers: libbpf drains them, records arrive decoded.

A :class:`PerfBuffer` delivers ``callback(cpu, record)``; a :class:`RingBuffer`
delivers ``callback(record)``.  Without a callback, records queue up and the
buffer is a blocking iterator (``for cpu, rec in pb``) and an asyncio one
(``async for ...``).  An exception raised by a callback comes out of ``poll()``
/ ``consume()``; the buffer stays usable.

Perf samples are padded to 8 bytes by the kernel, and programs sending a struct
followed by packet bytes (``bpf_perf_event_output`` with ``BPF_F_CTXLEN_MASK``)
make them longer still.  Opened with ``payload=True``, a buffer delivers each
record as a :class:`WithPayload`: ``.record`` and the trailing bytes as
``.payload`` (including the kernel's padding of up to 7 bytes, which the program
should let the reader cut off, e.g. with a length field in the record).

Where a faster drain goes (see the performance issue): ``_Reader._deliver``
is the single place records reach Python; a compiled drain can copy many raw
samples into one buffer per poll and feed them to it (or to a batch decoder)
without a C -> Python call per record.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Generic, Literal, TypeVar, overload

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr, Native, check_ptr
from btfgen.runtime.errors import _add_note, error_class
from btfgen.runtime.maps import MapBase
from btfgen.runtime.protocols import Codec, as_codec

R = TypeVar("R")
T = TypeVar("T")

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


_callbacks: dict[str, Any] = {}


def _callback(name: str) -> Any:
    """The C callback for perf events or ring samples (made once, after libbpf's cdef)."""
    if not _callbacks:
        lib()
        _callbacks["perf"] = ffi.callback("int(void *, int, struct perf_event_header *)",
                                          _on_perf_event)
        _callbacks["ring"] = ffi.callback("int(void *, void *, size_t)", _on_ring_sample)
    return _callbacks[name]


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

    def _record(self, data: Any, offset: int, size: int) -> Any:
        """Decode one sample of ``size`` bytes at ``data[offset:]``."""
        if self._decode is None:
            rec: Any = bytes(data[offset:offset + size])
            return WithPayload(rec, b"") if self._payload else rec
        if size < self._size:
            raise ValueError(f"{self._what}: a {size}-byte sample is shorter than its "
                             f"{self._size}-byte record")
        rec = self._decode(data, offset)
        if self._payload:
            return WithPayload(rec, bytes(data[offset + self._size:offset + size]))
        return rec

    _payload = False
    _what = ""

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
        self._ptr()  # raises if closed
        with self._native.using() as ptr:
            rc = int(getattr(lib(), fn)(ptr, *args))
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
        import asyncio  # only for asyncio users: it is slow to import

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
        # one copy of the whole event (header, size, sample): cheaper than cffi views
        data = ffi.unpack(ffi.cast("char *", event), event.size)
        etype, _misc, _size, raw = _HDR.unpack_from(data)
        if etype == PERF_RECORD_SAMPLE:
            rec = pb._record(data, 12, raw)
            pb.received += 1
            if pb._callback is None:
                pb._queue.append((cpu, rec))
            else:
                pb._callback(cpu, rec)
        elif etype == PERF_RECORD_LOST:
            _id, lost = _LOST.unpack_from(data, 8)
            pb.lost += lost
            if pb._lost_callback is not None:
                pb._lost_callback(cpu, lost)
    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
        pb._fail(e)
    return LIBBPF_PERF_EVENT_CONT



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
        self._payload = payload
        self._what = f"perf buffer {handle.name}"
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
                                                           _callback("perf"), self._handle_ref,
                                                           opts))
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

    def __iter__(self) -> Iterator[tuple[int, R]]:
        """Block and yield ``(cpu, record)`` forever (buffer opened without callback)."""
        return self._iter_queue(100)

    def __aiter__(self) -> AsyncIterator[tuple[int, R]]:
        """``async for cpu, record in pb`` (buffer opened without callback)."""
        return self._aiter_queue()


def _on_ring_sample(ctx: Any, data: Any, size: int) -> int:
    rb: RingBuffer[Any] = ffi.from_handle(ctx)
    try:
        rec = rb._record(ffi.buffer(data, size), 0, size)
        rb.received += 1
        if rb._callback is None:
            rb._queue.append(rec)
        else:
            rb._callback(rec)
    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
        rb._fail(e)
        return -1  # libbpf stops here; the sample is consumed, the rest stays queued
    return 0



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
        self._payload = payload
        self._what = f"ring buffer {handle.name}"
        self._handle_ref = ffi.new_handle(self)
        ptr = check_ptr(f"open ring buffer on map {handle.name}",
                        lambda: lib().ring_buffer__new(handle.fd, _callback("ring"),
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

    def __iter__(self) -> Iterator[R]:
        """Block and yield records forever (buffer opened without callback)."""
        return self._iter_queue(100)

    def __aiter__(self) -> AsyncIterator[R]:
        """``async for record in rb`` (buffer opened without callback)."""
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
                         wakeup_events: int = 1,
                         payload: Literal[False] = False) -> PerfBuffer[R]: ...

    @overload
    def open_perf_buffer(self, callback: Callable[[int, WithPayload[R]], object] | None = None,
                         lost_callback: Callable[[int, int], object] | None = None,
                         page_count: int = 64, cpus: Sequence[int] | None = None, *,
                         wakeup_events: int = 1,
                         payload: Literal[True]) -> PerfBuffer[WithPayload[R]]: ...

    def open_perf_buffer(self, callback: Callable[[int, Any], object] | None = None,
                         lost_callback: Callable[[int, int], object] | None = None,
                         page_count: int = 64, cpus: Sequence[int] | None = None, *,
                         wakeup_events: int = 1, payload: bool = False) -> PerfBuffer[Any]:
        """Open per-CPU buffers (``page_count`` pages each, on ``cpus`` or all) and
        deliver decoded records to ``callback(cpu, record)``.

        Without a callback, iterate over the buffer instead.  ``payload=True``
        delivers :class:`WithPayload` (the record and the bytes after it);
        ``wakeup_events`` wakes the reader every N samples instead of every one.
        """
        return PerfBuffer(self._h, self.record_codec, callback, lost_callback, page_count, cpus,
                          wakeup_events, payload)


class RingBuf(MapBase, Generic[R]):
    """A BPF_MAP_TYPE_RINGBUF whose records decode as ``R`` (see ``with_record``)."""

    def __init__(self, handle: MapPtr, record: Codec[R] | None = None) -> None:
        super().__init__(handle)
        self.record_codec = record

    @overload
    def with_record(self, record: Codec[T]) -> RingBuf[T]: ...

    @overload
    def with_record(self, record: type[T]) -> RingBuf[T]: ...

    def with_record(self, record: Any) -> RingBuf[Any]:
        """This map with records decoded by ``record`` (a codec or record class)."""
        return RingBuf(self._h, as_codec(record))

    @overload
    def open_ring_buffer(self, callback: Callable[[R], object] | None = None, *,
                         payload: Literal[False] = False) -> RingBuffer[R]: ...

    @overload
    def open_ring_buffer(self, callback: Callable[[WithPayload[R]], object] | None = None, *,
                         payload: Literal[True]) -> RingBuffer[WithPayload[R]]: ...

    def open_ring_buffer(self, callback: Callable[[Any], object] | None = None, *,
                         payload: bool = False) -> RingBuffer[Any]:
        """Open the ring buffer and deliver decoded records to ``callback(record)``
        (or iterate over it when there is no callback)."""
        return RingBuffer(self._h, self.record_codec, callback, payload)
