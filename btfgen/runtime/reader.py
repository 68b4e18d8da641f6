"""The reader core shared by perf buffers (:mod:`.perf`) and BPF ring buffers
(:mod:`.ringbuf`): one lock, one delivery cursor, one way to fail.

How records reach you is chosen once, when a buffer opens:

* **direct** -- records of plain C fields for a callback are built in C
  straight from the rings and handed over one at a time (no copy);
* **copy** -- the compiled drain copies what is waiting into a drain buffer
  (:mod:`.drain`), then C hands the records over one at a time, built in C
  (plain records), by ``from_bytes``, or one by one with their own size
  (payloads, raw bytes, flexible arrays, samples shorter than the record);
* **libbpf** -- without the compiled parts (or ``drain=False``): libbpf's poll
  calls back into Python once per record.

**Threads.**  A buffer is polled by one thread at a time: ``poll``,
``consume`` and ``read_batch`` from another thread wait for the running one (a
lock), within their own timeout (``poll(0)`` and ``consume()`` do not wait:
they return 0 while another thread polls).  Nothing is shared between
threads' output.  A poll from inside the buffer's own callback delivers what the
outer poll took off the rings and, on the direct path, more from the rings; it
never drains into the buffer the outer poll is delivering from.

**Interrupted polls.**  Records the copy drain took off the rings are kept in
the drain buffer with a cursor, which moves past a record just before its
callback is called (or it is queued, or put in a batch).  Whatever exception
interrupts delivery -- a callback's, a signal handler's (Ctrl-C, SIGTERM,
SIGALRM) -- every record is delivered once: those after the cursor come first
in the next ``poll``/``consume``/``read_batch``.  On the direct path the ring's
own position is the cursor.  A callback's ``Exception`` does not stop
delivery (the first one comes out of the poll with a note counting the
others); ``KeyboardInterrupt``, ``SystemExit`` and other non-``Exception``
exceptions stop it right after the current record.  A record counts as
delivered once its callback has been called: if a signal handler raises
inside that callback, the record is not delivered again.

**fork.**  The kernel does not copy perf ring mappings into a child: every
buffer knows the process that opened it, and in a child every call raises
:class:`RuntimeBpfError` naming it; the child's exit (or ``destroy()``) only
closes the child's copies of the fds.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

from btfgen.runtime import drain as _drain
from btfgen.runtime import records_fast
from btfgen.runtime.batch import decode_exact, flex_info
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.codec import RecordCodec
from btfgen.runtime.errors import RuntimeBpfError, _add_note
from btfgen.runtime.native import Native
from btfgen.runtime.protocols import Codec
from btfgen.runtime.reader_batch import BatchReads
from btfgen.runtime.records_fast import DELIVER_PAIRS, BulkDecoder, bulk_decoder

R = TypeVar("R")

#: The most copy drains one poll makes: it returns within its timeout (plus
#: its callbacks' time) even when the program writes as fast as we read.
MAX_DRAINS_PER_POLL = 4

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class _Process:
    """This process's id, kept up to date across fork() without a syscall per poll."""

    pid = os.getpid()


def _after_fork_in_child() -> None:
    _Process.pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork_in_child)


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


class ReaderNative(Native):
    """A buffer's libbpf pointer: freed when nothing polls it.

    ``active`` counts the polls running (changed inline by the reader, so that
    no exception can come between a poll and its count); a ``close()`` meanwhile
    (``destroy()`` from a callback or another thread) happens when the last one
    ends.  ``pid`` is the process that opened it."""

    def __init__(self, ptr: Any, free: str) -> None:
        super().__init__(ptr, free)
        self.active = 0
        self.close_later = False
        self.pid = os.getpid()

    def close(self) -> None:
        if self.active:
            self.close_later = True
            return
        self.close_later = False
        super().close()
        if self.ptr is None:
            self.closed()

    def closed(self) -> None:
        """After the free: release what the pointer's users kept (subclasses)."""


#: Open readers by owner object, for ``Skeleton.poll``.
_readers: weakref.WeakKeyDictionary[Any, weakref.WeakSet[Reader[Any]]] = (
    weakref.WeakKeyDictionary())


class Reader(BatchReads[R]):
    """What perf buffers and ring buffers share: the lock, the cursor, delivery,
    batches, iteration and failure reporting (see the module's docstring)."""

    _kind: ClassVar[str] = "buffer"
    #: The header the kernel puts before each sample in the ring (bytes).
    _header: ClassVar[int] = 0
    _native: ReaderNative
    _rings: _drain.DrainBuffer | None = None

    def _init_common(self, handle: MapPtr, codec: Codec[R] | None,
                     callback: Callable[..., Any] | None, payload: bool) -> None:
        handle.owner.check_loaded()
        self._codec = codec
        self._size = codec.size if codec is not None else 0
        self._callback = callback
        self._payload = payload
        self._what = f"{self._kind} {handle.name}"
        #: The map this buffer reads.
        self.map_name = handle.name
        self._owner = handle.owner
        self._flex = flex_info(codec.cls) if isinstance(codec, RecordCodec) else None
        self._queue: collections.deque[Any] = collections.deque()
        self._errors: list[BaseException] = []
        self._fail = self._errors.append  # a C call: nothing can interrupt it half-way
        #: Records delivered so far.
        self.received = 0
        self._lock = threading.RLock()
        self._init_batches()
        _readers.setdefault(handle.owner, weakref.WeakSet()).add(self)

    def _check_fits(self, ring_size: int, hint: str) -> None:
        """Raise when a whole record can never fit the ring."""
        need = self._size + self._header
        if self._codec is not None and need > ring_size:
            raise ValueError(f"{self._what}: a {self._size}-byte record ({need} bytes with the "
                             f"kernel's header) can never fit its {ring_size}-byte ring{hint}")

    def _choose(self, rings: _drain.DrainBuffer | None) -> None:
        """Pick the delivery strategy (see the module's docstring), once."""
        codec = self._codec
        self._rings = rings
        plain = isinstance(codec, RecordCodec) and not self._payload and self._flex is None
        #: Copy drains put a record per ``stride`` bytes; 0: packed, each whole.
        self._stride = self._size if plain else 0
        self._bulk: BulkDecoder | None = None
        self._decoder: Any = self._record
        if isinstance(codec, RecordCodec) and plain:
            self._bulk = bulk_decoder(codec.cls) if rings is not None else None
            self._decoder = self._bulk.plan if self._bulk is not None else codec.cls.from_bytes
        self._direct = rings is not None and self._callback is not None and self._bulk is not None
        self._target = self._callback if self._callback is not None else self._queue.append
        self._pairs = 0 if self._callback is not None else DELIVER_PAIRS

    @property
    def drained(self) -> bool:
        """True when the compiled drain serves this buffer (else libbpf callbacks)."""
        return self._rings is not None

    @property
    def closed(self) -> bool:
        """True after close() (or the skeleton's destroy())."""
        return self._native.ptr is None

    def _record(self, data: Any, offset: int, size: int) -> Any:
        """Decode one sample of ``size`` bytes at ``data[offset:]`` from its own
        bytes; Ellipsis (reported to ``_fail``) for one that cannot be."""
        codec = self._codec
        if codec is None:
            rec: Any = bytes(data[offset:offset + size])
            return WithPayload(rec, b"") if self._payload else rec
        if size < self._size:
            if not isinstance(codec, RecordCodec) or size < codec.min_size:
                # reported, and skipped (Ellipsis): raising would keep it for the next call
                self._fail(ValueError(f"{self._what}: a {size}-byte sample is shorter than "
                                      f"its {self._size}-byte record"))
                return ...
            rec = decode_exact(codec, data, offset, size, self._flex)  # zero-padded
        elif self._flex is not None:
            rec = decode_exact(codec, data, offset, size, self._flex)
        else:
            rec = codec.decode(data, offset)
        if self._payload:
            return WithPayload(rec, bytes(data[offset + self._size:offset + size]))
        return rec

    # -- one poller at a time -------------------------------------------------
    def _locked(self, timeout_ms: int, work: Callable[..., int], idle: int, *args: Any) -> int:
        """Run ``work(timeout_ms, nested, *args)`` holding the buffer, or return
        ``idle`` when another thread holds it for all of ``timeout_ms``.

        Taking and letting go of the buffer are written out here, with no
        Python call before them in their ``finally``: a signal handler runs (and
        may raise) when a Python function is entered, which would skip them."""
        if timeout_ms < -1:
            raise ValueError(f"{self._what}: timeout_ms must be -1 (forever) or more, "
                             f"not {timeout_ms}")
        lock = self._lock
        try:
            if not lock.acquire(False):
                if timeout_ms == 0:
                    return idle
                start = time.monotonic()
                if not lock.acquire(True, timeout_ms / 1000 if timeout_ms > 0 else -1):
                    return idle
                if timeout_ms > 0:
                    timeout_ms = max(0, timeout_ms - int((time.monotonic() - start) * 1000))
        except BaseException:
            # a signal handler raised right after acquire() returned: let go of it
            if lock._is_owned():  # type: ignore[attr-defined]
                lock.release()
            raise
        native = self._native
        try:
            native.active += 1
            try:
                if native.ptr is None or native.pid != _Process.pid:
                    self._refuse()
                result = work(timeout_ms, native.active > 1, *args)
                self._polled(result)
            finally:
                native.active -= 1
                if native.close_later and not native.active:
                    native.close()
        finally:
            lock.release()
        if self._errors:
            self._raise_pending()
        return result

    def _refuse(self) -> None:
        native = self._native
        if native.pid != _Process.pid:
            raise RuntimeBpfError(f"this {self._kind} ({self.map_name}) belongs to process "
                                  f"{native.pid}; open a new skeleton in the child")
        raise ValueError(f"{type(self).__name__} is closed")

    def _raise_pending(self) -> None:
        """Raise what callbacks raised: a KeyboardInterrupt-like one first, else
        the first, noting how many more there were."""
        errors = self._errors
        if not errors:
            return
        first = next((e for e in errors if not isinstance(e, Exception)), errors[0])
        more = len(errors) - 1
        errors.clear()
        if more:
            _add_note(first, f"{more} more callback exceptions in the same poll")
        raise first

    # -- the compiled paths ---------------------------------------------------
    def _pump(self, timeout_ms: int, nested: bool) -> int:
        """Deliver: what an interrupted call left first, then (direct) from the
        rings, then (copy) drains until the rings are empty or the bound."""
        rings = self._rings
        assert rings is not None
        out = rings.out
        total = 0
        if out.done < out.count:
            total = self._deliver_copied(rings)
            if nested or self._errors or out.done < out.count:
                return total
            timeout_ms = 0
        if self._direct:
            n, stopped = self._deliver_direct(rings, timeout_ms)
            total += n
            if stopped != 1 or nested:
                return total
            timeout_ms = 0  # a short sample: the copy drain takes it from here
        elif nested:
            return total
        for _ in range(MAX_DRAINS_PER_POLL):
            if self._drain_once(rings, timeout_ms, self._stride, 0):
                total += self._deliver_copied(rings)
            if not out.more or self._errors or out.done < out.count:
                break
            timeout_ms = 0
        return total

    def _drain_once(self, rings: _drain.DrainBuffer, timeout_ms: int, stride: int,
               limit: int) -> int:
        """One copy drain (its records wait behind the cursor); the record count."""
        n = rings.drain(timeout_ms, stride, limit)
        if n < 0:
            if n == -4:  # EINTR: the C side drained anyway
                return 0
            from btfgen.runtime.errors import error_class

            raise error_class(n)(f"{type(self).__name__}: poll", n)
        if rings.out.lost:
            self._report_lost()
        return n

    def _deliver_copied(self, rings: _drain.DrainBuffer) -> int:
        """Hand over the last drain's records from the cursor on; the count."""
        out = rings.out
        stride = self._stride
        if out.short_count or not stride:
            decoder: Any = self._record
            sizes = rings.sizes_addr
        else:
            decoder, sizes = self._decoder, 0
        data = rings.view(out.used)
        target, pairs, fail, cursor = self._target, self._pairs, self._fail, rings.cursor_addr
        start = out.done
        first = 0
        for cpu, count in self._segments(rings, out.count):
            end = first + count
            if end > out.done:
                records_fast.deliver(decoder, data, stride, sizes, first, count, target, cpu,
                                     fail, cursor, pairs)
                if out.done < end:  # stopped (Ctrl-C and the like)
                    break
            first = end
        taken = int(out.done - start)  # handed over, or failed to decode (reported)
        self.received += taken
        return taken

    def _deliver_direct(self, rings: _drain.DrainBuffer, timeout_ms: int) -> tuple[int, int]:
        """Wait, then build plain records straight from the rings for the
        callback: ``(delivered, stopped)``, stopped 1 at a short sample, 2 after
        a KeyboardInterrupt-like exception."""
        raise NotImplementedError

    def _segments(self, rings: _drain.DrainBuffer, n: int) -> list[tuple[Any, int]]:
        """``(cpu, count)`` runs of the last drain; cpu None: callback(record) shape."""
        raise NotImplementedError

    def _report_lost(self) -> None:
        """Account for losses the drain reported (perf buffers)."""

    def _polled(self, delivered: int) -> None:
        """After each poll (or batch) of ``delivered`` records, holding the buffer."""

    # -- libbpf's own poll ----------------------------------------------------
    def _libbpf_call(self, what: str, *args: Any) -> int:
        """libbpf's poll/consume, which deliver through the per-record callback."""
        if self._native.active > 1:
            # libbpf moves a ring's tail only after its callbacks return: a nested
            # poll would deliver the same records again (and again)
            raise RuntimeError(f"{type(self).__name__}: already being polled (from its own "
                               "callback); without the compiled drain, libbpf's polls cannot "
                               "nest")
        rc = self._libbpf_fn(what)(self._native.ptr, *args)
        if rc < 0 and self._errors:  # a callback raised: that comes out of the poll
            return 0
        if rc < 0 and rc != -4:  # EINTR: a signal; Python's handler runs on return
            from btfgen.runtime.errors import error_class

            raise error_class(rc)(f"{type(self).__name__}: {what}", rc)
        return max(int(rc), 0)

    def _libbpf_fn(self, what: str) -> Any:
        raise NotImplementedError

    # -- public polling -------------------------------------------------------
    def poll(self, timeout_ms: int = 100) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records and deliver them;
        returns how many were delivered.  Returns within the timeout plus the
        time its callbacks take."""
        return self._locked(timeout_ms, self._poll_locked, 0)

    def consume(self) -> int:
        """Deliver whatever is waiting, without blocking; returns the record count."""
        return self._locked(0, self._poll_locked, 0)

    def _poll_locked(self, timeout_ms: int, nested: bool) -> int:
        if self._rings is not None:
            return self._pump(timeout_ms, nested)
        before = self.received
        self._poll_libbpf(timeout_ms)
        return self.received - before

    def _poll_libbpf(self, timeout_ms: int) -> None:
        if timeout_ms:
            self._libbpf_call("poll", timeout_ms)
        else:
            self._libbpf_call("consume")

    def fileno(self) -> int:
        """The epoll fd: readable when records are waiting (for selectors/asyncio)."""
        native = self._native
        if native.ptr is None or native.pid != _Process.pid:
            self._refuse()
        return int(self._libbpf_fn("epoll_fd")(native.ptr))

    def close(self) -> None:
        """Free the buffer and its fds (idempotent; deferred while a poll runs)."""
        self._native.close()
        self._owner.disown(self._native)

    # -- iteration ------------------------------------------------------------
    def _iter_queue(self, timeout_ms: int) -> Iterator[Any]:
        if self._callback is not None:
            raise TypeError("iteration needs a buffer opened without a callback")
        return self._iter_forever(timeout_ms)

    def _iter_forever(self, timeout_ms: int) -> Iterator[Any]:
        while True:
            while self._queue:
                yield self._queue.popleft()
            self.poll(timeout_ms)

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
                self.consume()
                while self._queue:
                    yield self._queue.popleft()
                ready.clear()
                self.consume()
                if not self._queue:
                    await ready.wait()
        finally:
            loop.remove_reader(fd)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def poll_all(owner: Any, timeout_ms: int) -> int:
    """Wait up to ``timeout_ms`` (-1: forever) for any perf or ring buffer opened
    on ``owner`` (an object's :class:`~btfgen.runtime.native.ObjectCore`) and
    deliver what every one of them has; the record count.  One epoll over the
    buffers' epoll fds."""
    readers = [r for r in list(_readers.get(owner, ())) if not r.closed]
    if not readers:
        raise RuntimeBpfError("no perf or ring buffer is open on this skeleton")
    total = sum(r.consume() for r in readers)
    if total or timeout_ms == 0:
        return total
    with select.epoll() as ep:
        for r in readers:
            ep.register(r.fileno(), select.EPOLLIN)
        ep.poll(timeout_ms / 1000 if timeout_ms > 0 else -1)
    return sum(r.consume() for r in readers)


__all__ = ["MAX_DRAINS_PER_POLL", "Reader", "ReaderNative", "WithPayload", "poll_all"]
