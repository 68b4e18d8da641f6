"""Batch reads of perf and ring buffers (``read_batch``), for :mod:`.reader`.

A batch is the drain's records from the cursor on, handed to the caller as
one :class:`~btfgen.runtime.batch.PerfBatch`; the cursor moves past them last,
and until ``read_batch`` has returned the batch it is kept per thread (in
``_unclaimed``, which is also how the work hands it over): one an exception (a
signal handler's) stopped on its way out comes back from that thread's next
call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from btfgen.runtime import drain as _drain
from btfgen.runtime.batch import PerfBatch
from btfgen.runtime.protocols import Codec

R = TypeVar("R")


class BatchReads(Generic[R]):
    """``read_batch`` for :class:`~btfgen.runtime.reader.Reader`."""

    _codec: Codec[R] | None
    _payload: bool
    _rings: _drain.DrainBuffer | None
    _stride: int
    _size: int
    _flex: Any
    received: int
    #: The cpu of a batch's one segment when a single ring serves every CPU
    #: (BPF ring buffers: -1); None: a segment per run of one CPU's records.
    _batch_cpu: ClassVar[int | None] = None

    def _init_batches(self) -> None:
        self._sink: list[tuple[int, bytes]] | None = None
        self._sink_rest: list[tuple[int, bytes]] = []
        #: Per thread, the batch read_batch() is returning, until it has.
        self._unclaimed: dict[int, PerfBatch[R]] = {}

    def _locked(self, timeout_ms: int, work: Callable[..., int], idle: int, *args: Any) -> int:
        raise NotImplementedError


    def _drain_once(self, rings: _drain.DrainBuffer, timeout_ms: int, stride: int,
                    limit: int) -> int:
        raise NotImplementedError

    def _segments(self, rings: _drain.DrainBuffer, n: int) -> list[tuple[Any, int]]:
        raise NotImplementedError

    def _libbpf_call(self, what: str, *args: Any) -> int:
        raise NotImplementedError

    def read_batch(self, timeout_ms: int = 0, max_records: int | None = None) -> PerfBatch[R]:
        """What is waiting (after up to ``timeout_ms`` for something to arrive) as
        one :class:`PerfBatch`, no Python call per record: at most one drain
        buffer's worth (all the rings' bytes), and at most ``max_records``.
        What does not fit stays for the next call.

        The callback is not called for these records; a perf buffer's lost
        samples are counted (``lost``, ``lost_callback``) as usual.  The batch
        views the drain buffer, which the next drain reuses only once nothing
        holds the batch, its data or an array on it (otherwise it drains into
        another): drop each batch (``del batch, arr``) before reading the next
        to keep one buffer in use, still in the CPU's cache.  Records ending in
        a flexible array come packed, each with its own bytes.
        """
        codec = self._codec
        if self._payload or codec is None:
            raise TypeError("read_batch needs records of a record type (no payload)")
        if max_records is not None and max_records < 1:
            raise ValueError(f"max_records must be at least 1, not {max_records}")
        me = threading.get_ident()
        # a lost_callback's exception comes out of _locked: the batch waits for the next call
        self._locked(timeout_ms, self._batch if self._rings is not None else self._batch_libbpf,
                     0, codec, max_records, me)
        # No call from taking the batch to returning it: a signal handler runs
        # (and may raise) after a call, and the batch would be gone.
        unclaimed = self._unclaimed
        if me in unclaimed:
            batch = unclaimed[me]
            del unclaimed[me]
            return batch
        return PerfBatch(b"", codec, [])  # another thread held the buffer all along

    def _batch(self, timeout_ms: int, _nested: bool, codec: Codec[R], max_records: int | None,
               me: int) -> int:
        """Leave the next batch in ``_unclaimed[me]``; its record count."""
        unclaimed = self._unclaimed
        if unclaimed:
            kept = unclaimed.get(me)
            if kept is not None:  # stopped on its way out of the last call
                return len(kept)
        rings = self._rings
        assert rings is not None
        out = rings.out
        if out.done >= out.count:  # nothing left by an interrupted call: drain
            limit = max_records if max_records and max_records < rings.max_records else 0
            self._drain_once(rings, timeout_ms, self._stride, limit)
        lo, hi = out.done, out.count
        if max_records is not None and hi > lo + max_records:
            hi = lo + max_records
        if lo >= hi:
            unclaimed[me] = PerfBatch(b"", codec, [])
            return 0
        if self._batch_cpu is not None:
            segments = [(self._batch_cpu, hi - lo)]
        else:
            segments = self._segments(rings, out.count)
            if lo or hi < out.count:
                segments = _clip(segments, lo, hi)
        stride = self._stride
        if stride:
            sizes = rings.sizes()[lo:hi] if out.short_count else None
            start, end = lo * stride, hi * stride
        else:  # packed: each sample whole, 8-byte aligned
            sizes = rings.sizes()[lo:hi]
            start = out.done_bytes
            end = start + sum((s + 7) & ~7 for s in sizes)
        # the cursor moves last, nothing in between can raise; until read_batch
        # returns it, the batch waits in _unclaimed
        unclaimed[me] = PerfBatch(rings.view(end, start), codec, segments, sizes,
                                  rings.current if lo == 0 and stride else None,
                                  packed=not stride)
        out.done_bytes = end
        out.done = hi
        taken: int = hi - lo
        self.received += taken
        return taken

    def _batch_libbpf(self, timeout_ms: int, _nested: bool, codec: Codec[R],
                      max_records: int | None, me: int) -> int:
        """read_batch without the compiled drain: libbpf's callback collects
        samples; the batch is left in ``_unclaimed[me]``, its count returned."""
        batch = self._unclaimed[me] = self._collect_libbpf(timeout_ms, codec, max_records)
        return len(batch)

    def _collect_libbpf(self, timeout_ms: int, codec: Codec[R],
                        max_records: int | None) -> PerfBatch[R]:
        sink = self._sink_rest  # what the last bounded batch left
        if max_records is None or len(sink) < max_records:
            self._sink = sink
            try:
                if timeout_ms:
                    self._libbpf_call("poll", timeout_ms)
                self._libbpf_call("consume")
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
        stride = self._size
        if self._flex:
            data = b"".join(raw.ljust((len(raw) + 7) & ~7, b"\0") for _cpu, raw in sink)
            return PerfBatch(data, codec, segments, [len(raw) for _cpu, raw in sink],
                             packed=True)
        data = b"".join(raw[:stride].ljust(stride, b"\0") for _cpu, raw in sink)
        short = any(len(raw) < stride for _cpu, raw in sink)
        return PerfBatch(data, codec, segments,
                         [len(raw) for _cpu, raw in sink] if short else None)


def _clip(segments: list[tuple[Any, int]], lo: int, hi: int) -> list[tuple[Any, int]]:
    """The ``(cpu, count)`` runs of records ``lo`` up to ``hi``."""
    clipped: list[tuple[Any, int]] = []
    first = 0
    for cpu, count in segments:
        take = min(first + count, hi) - max(first, lo)
        if take > 0:
            clipped.append((cpu, take))
        first += count
    return clipped
