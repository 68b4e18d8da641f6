"""Perf and ring buffers (the names of earlier releases, kept for imports).

The readers live in :mod:`btfgen.runtime.perf` (perf buffers),
:mod:`btfgen.runtime.ringbuf` (BPF ring buffers) and their common core
:mod:`btfgen.runtime.reader`.
"""

from __future__ import annotations

from btfgen.runtime.perf import PerfBuffer, PerfEventArray
from btfgen.runtime.reader import WithPayload
from btfgen.runtime.ringbuf import RingBuf, RingBuffer

__all__ = ["PerfBuffer", "PerfEventArray", "RingBuf", "RingBuffer", "WithPayload"]
