"""BPF ring buffers (BPF_MAP_TYPE_RINGBUF): one ring for all CPUs, records decoded.

A :class:`RingBuffer` delivers ``callback(record)``; without a callback,
records queue up and the buffer is a blocking iterator and an asyncio one.
There is no lost count: when the ring is full, the kernel fails the program's
reserve/output call instead.

With the compiled drain (the default; ``drain=False`` forces libbpf's
per-record callback), the ring is read from btfgen's own mapping of the map,
skipping discarded records.  How records are delivered, what an interrupted
poll guarantees, threads and fork: see :mod:`btfgen.runtime.reader`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from btfgen.runtime import drain as _drain
from btfgen.runtime import records_fast
from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.maps import MapBase
from btfgen.runtime.native import check_ptr, take
from btfgen.runtime.protocols import Codec, as_codec
from btfgen.runtime.reader import _PAGE_SIZE, Reader, ReaderNative, WithPayload

R = TypeVar("R")
T = TypeVar("T")

_callback_ptr: list[Any] = []


def _on_ring_sample(ctx: Any, data: Any, size: int) -> int:
    """libbpf's per-record callback (no compiled drain)."""
    rb: RingBuffer[Any] = ffi.from_handle(ctx)
    try:
        if rb._sink is not None:  # read_batch() without the compiled drain
            rb._sink.append((-1, ffi.unpack(ffi.cast("char *", data), size)))
            rb.received += 1
            return 0
        rec = rb._record(ffi.buffer(data, size), 0, size)
        rb.received += 1
        if rec is ...:  # could not decode: reported
            return 0
        if rb._callback is None:
            rb._queue.append(rec)
        else:
            rb._callback(rec)
    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
        rb._fail(e)
        return -1  # libbpf stops here; the sample is consumed, the rest stays queued
    return 0


def _ring_callback() -> Any:
    if not _callback_ptr:
        lib()
        _callback_ptr.append(ffi.callback("int(void *, void *, size_t)", _on_ring_sample))
    return _callback_ptr[0]


class _RingNative(ReaderNative):
    """libbpf's ring_buffer, plus btfgen's own mapping of the ring (unmapped with it)."""

    def __init__(self, ptr: Any) -> None:
        super().__init__(ptr, "ring_buffer__free")
        self.mapping: _drain.RingbufSet | None = None

    def closed(self) -> None:
        mapping = take(self, "mapping")
        if mapping is not None:
            mapping.close()


class RingBuffer(Reader[R]):
    """A BPF_MAP_TYPE_RINGBUF; ``callback(record)`` per record.

    With the compiled drain a callback's exception does not stop delivery: the
    first comes out of ``poll()`` with the count of the others as a note, as
    for perf buffers.  (libbpf's callback path stops right after the failing
    record and leaves the rest in the ring.)
    """

    _kind: ClassVar[str] = "ring buffer"
    _batch_cpu: ClassVar[int | None] = -1  # one ring for all CPUs
    _header: ClassVar[int] = 8  # the record header (len, pg_off)

    def __init__(self, handle: MapPtr, codec: Codec[R] | None,
                 callback: Callable[[Any], Any] | None, payload: bool = False,
                 drain: bool = True) -> None:
        self._init_common(handle, codec, callback, payload)
        self._check_fits(_drain.map_max_entries(handle.fd), "")
        self._handle_ref = ffi.new_handle(self)
        # libbpf's ring_buffer is kept even when the drain reads the ring: its
        # epoll fd is what fileno() and poll() wait on, and it keeps the
        # drain=False path, ownership and close-from-a-callback the same for
        # both.  Its own poll/consume are never called then: they would consume
        # records through the per-record callback.
        ptr = check_ptr(f"open ring buffer on map {handle.name}",
                        lambda: lib().ring_buffer__new(handle.fd, _ring_callback(),
                                                       self._handle_ref, ffi.NULL))
        native = _RingNative(ptr)
        self._native = native
        self._owner.own(native)
        rings = None
        if drain and _drain.AVAILABLE and records_fast.AVAILABLE:
            try:
                rings = _drain.RingbufSet(handle.fd, int(lib().ring_buffer__epoll_fd(ptr)),
                                          _PAGE_SIZE)
            except BaseException:
                self.close()
                raise
            native.mapping = rings
        self._choose(rings)

    def _libbpf_fn(self, what: str) -> Any:
        return getattr(lib(), f"ring_buffer__{what}")

    def _poll_libbpf(self, timeout_ms: int) -> None:
        self._libbpf_call("poll" if timeout_ms else "consume", *([timeout_ms] if timeout_ms
                                                                 else []))

    def _deliver_direct(self, rings: _drain.DrainBuffer, timeout_ms: int) -> tuple[int, int]:
        assert isinstance(rings, _drain.RingbufSet) and self._bulk is not None
        rings.check_open()
        total, stopped = self._bulk.ringbuf_deliver(*rings.addresses, self._stride,
                                                    self._callback, self._fail, rings.epoll_fd,
                                                    timeout_ms)
        self.received += total
        return total, stopped

    def _segments(self, rings: _drain.DrainBuffer, n: int) -> list[tuple[Any, int]]:
        return [(None, n)]  # one ring for all CPUs: callback(record)

    def __iter__(self) -> Iterator[R]:
        """Block and yield records forever (buffer opened without callback)."""
        return self._iter_queue(100)

    def __aiter__(self) -> AsyncIterator[R]:
        """``async for record in rb`` (buffer opened without callback)."""
        return self._aiter_queue()


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
                         drain: bool = True,
                         payload: Literal[False] = False) -> RingBuffer[R]: ...

    @overload
    def open_ring_buffer(self, callback: Callable[[WithPayload[R]], object] | None = None, *,
                         drain: bool = True,
                         payload: Literal[True]) -> RingBuffer[WithPayload[R]]: ...

    def open_ring_buffer(self, callback: Callable[[Any], object] | None = None, *,
                         drain: bool = True, payload: bool = False) -> RingBuffer[Any]:
        """Open the ring buffer and deliver decoded records to ``callback(record)``
        (or iterate over it when there is no callback).  ``drain=False`` uses
        libbpf's per-record callback instead of the compiled drain."""
        return RingBuffer(self._h, self.record_codec, callback, payload, drain)
