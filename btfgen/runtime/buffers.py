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

With the compiled parts of the runtime (built by ``pip install``), there is no
C -> Python call per record.  Records of plain C fields for a callback are built
by ``btfgen.runtime._records`` straight from the rings, each handed to the
callback, one C call per poll; anything else is copied by
``btfgen.runtime._drain`` (see :mod:`btfgen.runtime.drain`) into one buffer per
poll, then decoded (in C for plain records).  Without the extensions (or with
``drain=False``), libbpf calls back into Python once per record.
``read_batch()`` returns everything waiting, or at most ``max_records`` of it,
as one :class:`PerfBatch` (records as a list or a numpy structured array).
"""

from __future__ import annotations

import collections
import errno
import os
import struct
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from itertools import repeat
from typing import Any, Generic, Literal, TypeVar, overload

from btfgen.runtime import drain as _drain
from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.batch import PerfBatch
from btfgen.runtime.bpfobj import MapPtr, Native, check_ptr
from btfgen.runtime.codec import RecordCodec
from btfgen.runtime.errors import _add_note, error_class
from btfgen.runtime.maps import MapBase
from btfgen.runtime.protocols import Codec, as_codec
from btfgen.runtime.records_fast import BulkDecoder, bulk_decoder

R = TypeVar("R")
T = TypeVar("T")

PERF_RECORD_LOST, PERF_RECORD_SAMPLE = 2, 9
PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW = 1, 10, 1 << 10
LIBBPF_PERF_EVENT_CONT = -2
_PERF_ATTR_WATERMARK = 1 << 14
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_EINTR = -errno.EINTR
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
        self._rings: _drain.DrainBuffer | None = None
        self._sink: list[tuple[int, bytes]] | None = None
        self._sink_rest: list[tuple[int, bytes]] = []
        self._stride = 0
        self._from_bytes: Any = None
        self._bulk: BulkDecoder | None = None

    def _init_drain(self, rings: _drain.DrainBuffer | None) -> None:
        """Serve this buffer by ``rings`` (None: libbpf's per-record callback)."""
        codec = self._codec
        self._rings = rings
        # Fixed-size records go one per slot of ``stride`` bytes; others are packed.
        self._stride = self._size if (codec is not None and not self._payload) else 0
        if isinstance(codec, RecordCodec):
            self._from_bytes = codec.cls.from_bytes
            if rings is not None and self._stride:
                self._bulk = bulk_decoder(codec.cls)
        elif codec is not None:
            self._from_bytes = codec.decode

    @property
    def drained(self) -> bool:
        """True when the compiled drain serves this buffer (else libbpf callbacks)."""
        return self._rings is not None

    def _record(self, data: Any, offset: int, size: int) -> Any:
        """Decode one sample of ``size`` bytes at ``data[offset:]``."""
        if self._decode is None:
            rec: Any = bytes(data[offset:offset + size])
            return WithPayload(rec, b"") if self._payload else rec
        if size < self._size:
            codec = self._codec
            if not isinstance(codec, RecordCodec) or size < codec.min_size:
                raise ValueError(f"{self._what}: a {size}-byte sample is shorter than its "
                                 f"{self._size}-byte record")
            rec = codec.decode_sample(data, offset, size)  # variable-length: zero-padded
        else:
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

    def _pump(self, timeout_ms: int) -> int:
        """Drain the rings (waiting first unless ``timeout_ms`` is 0) and deliver the
        records; returns the record count.

        This is the hot path: one C call per poll, then the records are built
        (in C for plain records) and delivered."""
        rings = self._rings
        assert rings is not None
        native = self._native
        if native.ptr is None:
            raise ValueError(f"{type(self).__name__} is closed")
        native.hold()  # close() from a callback or another thread waits for us
        try:
            total = self._drain_rings(rings, timeout_ms, self._stride)
        finally:
            native.release()
        if self._error is not None:
            self._raise_pending()
        return total

    def _drain_rings(self, rings: _drain.DrainBuffer, timeout_ms: int, stride: int) -> int:
        """Deliver everything waiting; the record count.

        Plain records for a callback are built straight from the rings
        (:meth:`_deliver_direct`); anything else is copied out by the drain
        first, until the rings are empty."""
        total = 0
        if self._callback is not None and self._bulk is not None:
            # no copy; a sample shorter than the record stops it, the drain takes the rest
            total, drain_rest = self._deliver_direct(rings, stride, timeout_ms)
            self.received += total
            if not drain_rest:
                return total
            timeout_ms = 0
        out = rings.out
        while True:
            n = self._drain_once(rings, timeout_ms, stride, 0)
            if n:
                total += n
                self._take(rings, out, n, stride)
            if not out.more or self._error is not None:  # a callback raised: out it comes
                break
            timeout_ms = 0
        return total

    def _drain_once(self, rings: _drain.DrainBuffer, timeout_ms: int, stride: int,
                    limit: int) -> int:
        """One drain (see :meth:`DrainBuffer.drain`), its losses and records
        counted; the record count.  A -errno is raised, except EINTR (0 records:
        the C side drains on EINTR anyway; this is for safety)."""
        return self._drained(rings, rings.drain(timeout_ms, stride, limit))

    def _drained(self, rings: _drain.DrainBuffer, n: int) -> int:
        """Count a drain that returned ``n``, and its losses; the record count."""
        if n < 0:
            if n == _EINTR:
                return 0
            raise error_class(n)(f"{type(self).__name__}: poll", n)
        if rings.out.lost:
            self._take_lost(rings)
        self.received += n
        return n

    def _deliver_direct(self, rings: _drain.DrainBuffer, stride: int,
                        timeout_ms: int) -> tuple[int, int]:
        """Wait, then build plain records straight from the rings and hand them
        to the callback: ``(delivered, stopped at a short sample)``."""
        raise NotImplementedError

    def _take_lost(self, rings: _drain.DrainBuffer) -> None:
        """Account for losses the drain reported (perf buffers only)."""

    def _segments(self, rings: _drain.DrainBuffer, out: Any, n: int) -> list[tuple[Any, int]]:
        """``(cpu, count)`` runs of the last drain; cpu None: callback(record) shape."""
        raise NotImplementedError

    def _take(self, rings: _drain.DrainBuffer, out: Any, n: int, stride: int) -> None:
        """Deliver the ``n`` records of the last drain."""
        segments = self._segments(rings, out, n)
        data = rings.view(out.used)
        if self._bulk is not None and not out.short_count:
            self._deliver_bulk(data, segments)
        elif out.short_count or not stride:
            self._deliver_sized(data, segments, rings.sizes())
        else:
            self._deliver_fixed(data, segments)

    def _deliver_bulk(self, data: memoryview, segments: list[tuple[Any, int]]) -> None:
        """The hot path: each record built in C and handed to the callback from C
        (or queued), no Python loop per record.  A segment's cpu None means
        ``callback(record)`` and bare records in the queue."""
        callback, stride, bulk = self._callback, self._stride, self._bulk
        assert bulk is not None
        pos = 0
        for cpu, count in segments:
            if callback is None:
                recs = bulk.build(data, stride, pos, count)
                self._queue.extend(recs if cpu is None else zip(repeat(cpu), recs))
            else:
                bulk.deliver(data, stride, pos, count, callback, cpu, self._fail)
            pos += count * stride

    def _deliver_fixed(self, data: bytes | memoryview, segments: list[tuple[Any, int]]) -> None:
        """Records at a fixed stride, each at least a whole record, by ``from_bytes``."""
        decode, callback, stride = self._from_bytes, self._callback, self._stride
        pos = 0
        for cpu, count in segments:
            end = pos + count * stride
            if callback is None:
                recs = [decode(data, off) for off in range(pos, end, stride)]
                self._queue.extend(recs if cpu is None else zip(repeat(cpu), recs))
            elif cpu is None:
                for off in range(pos, end, stride):
                    try:
                        callback(decode(data, off))
                    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
                        self._fail(e)
            else:
                for off in range(pos, end, stride):
                    try:
                        callback(cpu, decode(data, off))
                    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
                        self._fail(e)
            pos = end

    def _deliver_sized(self, data: bytes | memoryview, segments: list[tuple[Any, int]],
                       sizes: list[int]) -> None:
        """Records of any size (payloads, raw bytes, short samples): one at a time."""
        stride = self._stride
        pos = idx = 0
        for cpu, count in segments:
            for size in sizes[idx:idx + count]:
                try:
                    rec = self._record(data, pos, min(size, stride) if stride else size)
                    if self._callback is None:
                        self._queue.append(rec if cpu is None else (cpu, rec))
                    elif cpu is None:
                        self._callback(rec)
                    else:
                        self._callback(cpu, rec)
                except BaseException as e:  # noqa: BLE001 - re-raised from poll()
                    self._fail(e)
                pos = pos + stride if stride else (pos + size + 7) & ~7
            idx += count

    def read_batch(self, timeout_ms: int = 0, max_records: int | None = None) -> PerfBatch[R]:
        """Everything waiting (after up to ``timeout_ms`` for something to arrive),
        or at most ``max_records`` of it, as one :class:`PerfBatch`: no Python call
        per record.  What does not fit stays for the next call.

        The callback is not called for these records; a perf buffer's lost
        samples are counted (``lost``, ``lost_callback``) as usual.  A consumer far
        behind does better with bounded batches that stay in the CPU's cache
        (50,000 records of 48 bytes are 2.4 MB, more than a core's L2 cache).

        The batch views the drain buffer, which the next drain reuses only once
        nothing holds the batch, its data or an array on it (otherwise it drains
        into another).  Dropping each batch (``del batch, arr``) before reading
        the next keeps one buffer in use, still in the cache: on the test VM,
        ~3 ns less per 48-byte record for a consumer far behind.
        """
        codec = self._codec
        if self._payload or codec is None:
            raise TypeError("read_batch needs fixed-size records (a record type, no payload)")
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        rings = self._rings
        if rings is None:
            return self._read_batch_fallback(codec, timeout_ms, self._size, max_records)
        native = self._native
        if native.ptr is None:
            raise ValueError(f"{type(self).__name__} is closed")
        if max_records is None:
            limit = 0
        else:
            limit = max_records if max_records < rings.max_records else rings.max_records
        native.hold()
        try:
            n = rings.drain(timeout_ms, self._size, limit)
            out = rings.out
            if n < 0 or out.lost:  # an error to raise, or losses to count and report
                n = self._drained(rings, n)
            else:
                self.received += n
            if not n:
                batch: PerfBatch[R] = PerfBatch(b"", codec, [])
            elif limit or not out.more or self._error is not None:  # one drain did it
                batch = PerfBatch(rings.view(out.used), codec, self._segments(rings, out, n),
                                  rings.sizes() if out.short_count else None, rings.current)
            else:  # unbounded, and the drain buffer filled up
                batch = self._drain_until_empty(rings, codec, n)
        finally:
            native.release()
        if self._error is not None:  # a lost_callback raised
            self._raise_pending()
        return batch

    def _drain_until_empty(self, rings: _drain.DrainBuffer, codec: Codec[R],
                           n: int) -> PerfBatch[R]:
        """The batch of a drain of ``n`` records that filled the drain buffer, and
        of further drains until the rings are empty, joined in one buffer; it has
        every sample's size when one was short."""
        out = rings.out
        parts: list[memoryview] = []
        segments: list[tuple[Any, int]] = []
        drain_sizes: list[list[int]] = []
        short = False
        while True:
            if n:
                segments += self._segments(rings, out, n)
                short = short or bool(out.short_count)
                drain_sizes.append(rings.sizes())
                parts.append(rings.view(out.used))
            if not out.more or self._error is not None:  # a lost_callback raised
                break
            n = self._drain_once(rings, 0, self._size, 0)
        sizes = [size for part in drain_sizes for size in part] if short else None
        return PerfBatch(b"".join(parts), codec, segments, sizes)

    def _read_batch_fallback(self, codec: Codec[R], timeout_ms: int, stride: int,
                             max_records: int | None) -> PerfBatch[R]:
        sink = self._sink_rest  # what the last bounded batch left
        if max_records is None or len(sink) < max_records:
            self._sink = sink
            try:
                if timeout_ms:
                    self._run("poll", self._poll_fn, timeout_ms)
                self._run("consume", self._consume_fn)
            finally:
                self._sink = None
        if max_records is None:
            self._sink_rest = []
        else:
            sink, self._sink_rest = sink[:max_records], sink[max_records:]
        segments: list[tuple[int, int]] = []
        for cpu, _raw in sink:
            if segments and segments[-1][0] == cpu:
                segments[-1] = (cpu, segments[-1][1] + 1)
            else:
                segments.append((cpu, 1))
        data = b"".join(raw[:stride].ljust(stride, b"\0") for _cpu, raw in sink)
        short = any(len(raw) < stride for _cpu, raw in sink)
        return PerfBatch(data, codec, segments,
                         [len(raw) for _cpu, raw in sink] if short else None)

    _poll_fn = ""
    _consume_fn = ""

    def _ptr(self) -> Any:
        if self._native.ptr is None:
            raise ValueError(f"{type(self).__name__} is closed")
        return self._native.ptr

    def _run(self, what: str, fn: str, *args: Any) -> int:
        """libbpf's own poll/consume (no compiled drain), which deliver through
        the per-record callback."""
        self._ptr()  # raises if closed
        if self._native.busy:
            # libbpf moves a ring's tail only after its callbacks return: a nested
            # poll would deliver the same records again (and again)
            raise RuntimeError(f"{type(self).__name__}: already being polled (from its own "
                               "callback or another thread); without the compiled drain, "
                               "libbpf's polls cannot nest")
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
            if pb._sink is not None:  # read_batch() without the compiled drain
                pb._sink.append((cpu, data[12:12 + raw]))
                pb.received += 1
                return LIBBPF_PERF_EVENT_CONT
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
    """Per-CPU perf ring buffers of a PERF_EVENT_ARRAY map.

    ``callback(cpu, record)`` per sample, ``lost_callback(cpu, count)`` per loss
    report; ``lost`` is the running total of samples the kernel dropped.
    ``wakeup_events=N`` (or ``wakeup_bytes=B``) makes the kernel wake the reader
    every N samples (B bytes) instead of every one, which costs the traced
    program much less; ``poll()`` drains whatever is waiting when its timeout
    expires, so records wait at most that long.  ``drain=False`` forces
    libbpf's per-record callback even when the compiled drain is built.
    """

    _epoll_fn = "perf_buffer__epoll_fd"
    _poll_fn = "perf_buffer__poll"
    _consume_fn = "perf_buffer__consume"

    def __init__(self, handle: MapPtr, codec: Codec[R] | None,
                 callback: Callable[[int, Any], Any] | None,
                 lost_callback: Callable[[int, int], Any] | None = None, page_count: int = 64,
                 cpus: Sequence[int] | None = None, wakeup_events: int = 1,
                 payload: bool = False, wakeup_bytes: int = 0, drain: bool = True) -> None:
        handle.owner.check_loaded()
        if page_count <= 0 or page_count & (page_count - 1):
            raise ValueError(f"page_count must be a power of two, not {page_count}")
        if wakeup_bytes < 0 or wakeup_bytes >= page_count * _PAGE_SIZE:
            raise ValueError(f"wakeup_bytes must be below the buffer size "
                             f"({page_count * _PAGE_SIZE}), not {wakeup_bytes}")
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
        if wakeup_bytes:
            attr.flags = _PERF_ATTR_WATERMARK
            attr.wakeup_events = wakeup_bytes  # a union with wakeup_watermark
        else:
            attr.wakeup_events = max(1, wakeup_events)
        #: True when poll() waits for more than one sample: it then drains on timeout.
        self._batched_wakeup = bool(wakeup_bytes) or wakeup_events > 1
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
        count = int(lib().perf_buffer__buffer_cnt(ptr))
        # libbpf opens ring i for cpus[i], or for the i-th online CPU.
        self._cpus = list(cpus) if cpus is not None else _drain.online_cpus()
        self._ring_cpus = tuple(self._cpus)
        use_drain = drain and _drain.AVAILABLE and len(self._cpus) == count
        self._init_drain(_drain.RingSet(ptr, count, _PAGE_SIZE) if use_drain else None)

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records and deliver them;
        returns how many were delivered."""
        if self._rings is None:
            before = self.received
            n = self._run("poll", "perf_buffer__poll", timeout_ms)
            if n == 0 and self._batched_wakeup:  # timed out: take what did not wake us
                self._run("consume", "perf_buffer__consume")
            return self.received - before
        return self._pump(timeout_ms)

    def consume(self) -> int:
        """Deliver whatever is waiting, without blocking; returns the record count."""
        if self._rings is None:
            before = self.received
            self._run("consume", "perf_buffer__consume")
            return self.received - before
        return self._pump(0)

    def _deliver_direct(self, rings: _drain.DrainBuffer, stride: int,
                        timeout_ms: int) -> tuple[int, int]:
        assert isinstance(rings, _drain.RingSet) and self._bulk is not None
        total, lost, stopped = self._bulk.perf_deliver(
            rings.rings_addr, rings.count, self._ring_cpus, stride, self._callback,
            self._fail, rings.lost_addr, rings.epoll_fd, timeout_ms)
        if lost:
            self._take_lost(rings)
        return total, stopped

    def _segments(self, rings: _drain.DrainBuffer, out: Any, n: int) -> list[tuple[Any, int]]:
        only = out.only_ring
        if only >= 0:
            return [(self._cpus[only], n)]
        return [(self._cpus[r], c) for r, c in enumerate(rings.ring_counts()) if c]

    def _take_lost(self, rings: _drain.DrainBuffer) -> None:
        for i, count in enumerate(rings.take_lost()):
            if count:
                self.lost += count
                if self._lost_callback is not None:
                    try:
                        self._lost_callback(self._cpus[i], count)
                    except BaseException as e:  # noqa: BLE001 - re-raised from poll()
                        self._fail(e)

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
        if rb._sink is not None:  # read_batch() without the compiled drain
            rb._sink.append((-1, ffi.unpack(ffi.cast("char *", data), size)))
            rb.received += 1
            return 0
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


class _RingNative(Native):
    """libbpf's ring_buffer, plus btfgen's own mapping of the ring (unmapped with it)."""

    def __init__(self, ptr: Any) -> None:
        super().__init__(ptr, "ring_buffer__free")
        self.mapping: _drain.RingbufSet | None = None

    def close(self) -> None:
        super().close()
        if self.ptr is None and self.mapping is not None:  # not deferred by a running poll
            mapping, self.mapping = self.mapping, None
            mapping.close()


class RingBuffer(_Reader[R]):
    """A BPF_MAP_TYPE_RINGBUF; ``callback(record)`` per record.

    There is no lost count here: when the ring is full, the kernel fails the
    program's reserve/output call instead.

    With the compiled drain (the default; ``drain=False`` forces libbpf's
    per-record callback), the ring is read from btfgen's own mapping of the
    map, skipping discarded records: plain records for a callback are built
    straight from the ring, anything else is copied into one buffer per poll
    first.  A callback's exception then does not stop delivery: the
    first comes out of ``poll()`` with the count of the others as a note, as
    for perf buffers.  (libbpf's callback path stops right after the failing
    record and leaves the rest in the ring.)
    """

    _epoll_fn = "ring_buffer__epoll_fd"
    _poll_fn = "ring_buffer__poll"
    _consume_fn = "ring_buffer__consume"

    def __init__(self, handle: MapPtr, codec: Codec[R] | None,
                 callback: Callable[[Any], Any] | None, payload: bool = False,
                 drain: bool = True) -> None:
        handle.owner.check_loaded()
        self._init_common(codec, callback)
        self._payload = payload
        self._what = f"ring buffer {handle.name}"
        self._handle_ref = ffi.new_handle(self)
        # libbpf's ring_buffer is kept even when the drain reads the ring: its
        # epoll fd is what fileno() and poll() wait on, and it keeps the
        # drain=False path, ownership and close-from-a-callback the same for
        # both.  Its own poll/consume are never called then: they would consume
        # records through the per-record callback.
        ptr = check_ptr(f"open ring buffer on map {handle.name}",
                        lambda: lib().ring_buffer__new(handle.fd, _callback("ring"),
                                                       self._handle_ref, ffi.NULL))
        native = _RingNative(ptr)
        self._native = native
        self._owner = handle.owner
        self._owner.own(native)
        #: The map this buffer reads.
        self.map_name = handle.name
        rings = None
        if drain and _drain.AVAILABLE:
            try:
                rings = _drain.RingbufSet(handle.fd, int(lib().ring_buffer__epoll_fd(ptr)),
                                          _PAGE_SIZE)
            except BaseException:
                self.close()
                raise
            native.mapping = rings
        self._init_drain(rings)

    def _deliver_direct(self, rings: _drain.DrainBuffer, stride: int,
                        timeout_ms: int) -> tuple[int, int]:
        assert isinstance(rings, _drain.RingbufSet) and self._bulk is not None
        rings.check_open()
        return self._bulk.ringbuf_deliver(*rings.addresses, stride, self._callback, self._fail,
                                          rings.epoll_fd, timeout_ms)

    def _segments(self, rings: _drain.DrainBuffer, out: Any, n: int) -> list[tuple[Any, int]]:
        return [(None, n)]  # one ring for all CPUs: callback(record)

    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records and deliver them;
        returns how many were delivered."""
        if self._rings is None:
            return self._run("poll", "ring_buffer__poll", timeout_ms)
        return self._pump(timeout_ms)

    def consume(self) -> int:
        """Deliver whatever is waiting, without blocking; returns the record count."""
        if self._rings is None:
            return self._run("consume", "ring_buffer__consume")
        return self._pump(0)

    def read_batch(self, timeout_ms: int = 0, max_records: int | None = None) -> PerfBatch[R]:
        """Everything waiting (after up to ``timeout_ms`` for something to arrive),
        or at most ``max_records`` of it, as one :class:`PerfBatch`: no Python call
        per record.  What does not fit stays for the next call.

        The callback is not called for these records.  A ring buffer is shared
        by all CPUs, so the batch has one segment, with cpu -1.
        """
        batch = super().read_batch(timeout_ms, max_records)
        count = len(batch)
        batch.segments = [(-1, count)] if count else []
        return batch

    def close(self) -> None:
        """Free the ring buffer manager and unmap the ring (idempotent)."""
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
        """Open per-CPU buffers (``page_count`` pages each, on ``cpus`` or all) and
        deliver decoded records to ``callback(cpu, record)``.

        Without a callback, iterate over the buffer instead.  ``payload=True``
        delivers :class:`WithPayload` (the record and the bytes after it);
        ``wakeup_events`` wakes the reader every N samples instead of every one
        (``wakeup_bytes``: every B bytes); ``poll(timeout)`` still delivers what
        is waiting when the timeout expires.  ``drain=False`` uses libbpf's
        per-record callback instead of the compiled drain.
        """
        return PerfBuffer(self._h, self.record_codec, callback, lost_callback, page_count, cpus,
                          wakeup_events, payload, wakeup_bytes, drain)


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
