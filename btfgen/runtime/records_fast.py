"""Building many generated records at once, in C (``btfgen.runtime._records``).

A generated record class decodes one record with ``from_bytes``: a precompiled
``struct.Struct`` unpack, then ``__init__``.  For a run of records drained from
a perf or ring buffer, :func:`bulk_decoder` gives C functions instead: one
builds them all as a list, one builds them one at a time and hands each to the
user's callback (no Python loop, one record alive at a time) -- when the class
is a slotted dataclass whose every field is a plain C field (integers, bools,
floats, pointers, ``char[N]`` cut at the first NUL).  Before a plan is used, it
must decode sample records to exactly what ``from_bytes`` gives (values and
types); otherwise (enums, nested records, arrays, bitfields, renamed fields, no
extension) there is no bulk decoder and callers use ``from_bytes``.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import os
import random
import sys
from collections.abc import Callable
from typing import Any

_ext: Any
try:
    if os.environ.get("BTFGEN_NO_DRAIN"):
        raise ImportError("disabled by BTFGEN_NO_DRAIN")
    from btfgen.runtime import _records as _ext  # type: ignore[attr-defined, no-redef, unused-ignore]
except ImportError:
    _ext = None

#: True when the C record builders are importable and enabled.
AVAILABLE = _ext is not None

#: ``deliver(..., flags)``: hand ``(cpu, record)`` tuples to a queue's append.
DELIVER_PAIRS = 1

K_U, K_I, K_BOOL, K_FLOAT, K_CSTR = 1, 2, 3, 4, 5


class BulkDecoder:
    """The C record builders of one record class (see :func:`bulk_decoder`)."""

    __slots__ = ("plan", "build", "perf_deliver", "ringbuf_deliver")

    def __init__(self, plan: Any) -> None:
        #: The plan capsule (a decoder for :func:`deliver`).
        self.plan = plan
        # partials, not closures: no Python frame per call
        #: ``build(data, stride, start, count) -> list`` of records at
        #: ``data[start + i * stride]``.
        self.build: Callable[[Any, int, int, int], list[Any]] = functools.partial(
            _ext.build, plan)
        #: ``perf_deliver(rings, nrings, cpus, stride, callback, fail, ring_lost,
        #: epoll_fd, timeout_ms) -> (delivered, lost, stopped)``: waits, then
        #: builds each sample straight from libbpf's perf rings and calls
        #: ``callback(cpu, rec)`` (see ``_records.c``).
        self.perf_deliver: Callable[..., tuple[int, int, int]] = functools.partial(
            _ext.perf_deliver, plan)
        #: ``ringbuf_deliver(consumer_pos, producer_pos, data, data_size, stride,
        #: callback, fail, epoll_fd, timeout_ms) -> (delivered, stopped)``: the
        #: same for a BPF ring buffer, ``callback(rec)``.
        self.ringbuf_deliver: Callable[..., tuple[int, int]] = functools.partial(
            _ext.ringbuf_deliver, plan)

    def deliver(self, data: Any, stride: int, start: int, count: int,
                callback: Callable[..., Any], cpu: int | None,
                fail: Callable[[BaseException], Any]) -> int:
        """Build the ``count`` records at ``data[start + i * stride]`` one at a
        time and call ``callback(cpu, rec)`` (``callback(rec)`` when ``cpu`` is
        None); a callback's exception goes to ``fail(exc)`` and delivery goes on
        (a KeyboardInterrupt-like one stops it after that record).  Returns the
        records handed over.  (The readers call :func:`deliver` with their
        drain's cursor instead.)"""
        if not 0 <= start <= len(data):
            raise ValueError("records outside the buffer")
        view = memoryview(data)[start:]
        cursor = array.array("Q", [0, 0])
        return deliver(self.plan, view, stride, 0, 0, count, callback, cpu, fail,
                       cursor.buffer_info()[0], 0)



def deliver(decoder: Any, data: Any, stride: int, sizes_addr: int, first: int, count: int,
            callback: Callable[..., Any], cpu: int | None,
            fail: Callable[[BaseException], Any], cursor_addr: int, flags: int) -> int:
    """Hand records ``first .. first + count - 1`` of a drain to ``callback``
    from the one a cursor (two uint64 at ``cursor_addr``: record index, byte
    offset) points at, moving it past each record before its callback runs: see
    ``deliver`` in ``_records.c``.  ``decoder`` is a plan or ``decoder(data,
    offset[, size])``."""
    return int(_ext.deliver(decoder, data, stride, sizes_addr, first, count, callback, cpu, fail,
                            cursor_addr, flags))


def c_type_of(cls: Any) -> tuple[Any, Any] | None:
    """``(ffi, ctype)`` of a generated record class, from its module's ``TYPES``
    and ``ffi``; None for other classes."""
    mod = sys.modules.get(getattr(cls, "__module__", ""), None)
    types = getattr(mod, "TYPES", None) or {}
    spelling = next((s for s, c in types.items() if c is cls), None)
    ffi = getattr(mod, "ffi", None)
    if ffi is None or spelling is None:
        return None
    return ffi, ffi.typeof(spelling)


_cache: dict[type, BulkDecoder | None] = {}


def bulk_decoder(cls: Any) -> BulkDecoder | None:
    """A checked bulk decoder for the generated record class ``cls``, or None."""
    if cls in _cache:
        return _cache[cls]
    try:
        dec = _make(cls)
    except Exception:  # noqa: BLE001 - any surprise: no fast path, from_bytes is right
        dec = None
    _cache[cls] = dec
    return dec


def _kind(ffi: Any, t: Any) -> tuple[int, int] | None:
    if t.kind == "pointer":
        return K_U, ffi.sizeof(t)
    if t.kind == "array":
        item = t.item
        if item.kind == "primitive" and item.cname == "char" and t.length:
            return K_CSTR, t.length
        return None
    if t.kind != "primitive":
        return None
    size = ffi.sizeof(t)
    if t.cname == "_Bool":
        return K_BOOL, size
    if t.cname in ("float", "double"):
        return K_FLOAT, size
    if t.cname == "long double" or size not in (1, 2, 4, 8):
        return None
    return (K_I if int(ffi.cast(t, -1)) < 0 else K_U), size


def _make(cls: Any) -> BulkDecoder | None:
    if _ext is None or not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        return None
    if hasattr(cls, "__post_init__") or not hasattr(cls, "from_bytes"):
        return None
    found = c_type_of(cls)
    if found is None:
        return None
    ffi, ctype = found
    if ctype.kind != "struct":
        return None
    cfields = {name: f for name, f in ctype.fields or () if name}
    size = int(getattr(cls, "SIZE"))  # noqa: B009 - a generated class attribute
    plan = []
    for df in dataclasses.fields(cls):
        f = cfields.get(df.name)
        if f is None or f.bitsize >= 0:
            return None
        kind = _kind(ffi, f.type)
        if kind is None:
            return None
        descr = cls.__dict__.get(df.name)
        if descr is None or not hasattr(type(descr), "__set__"):
            return None
        plan.append((descr, kind[0], f.offset, kind[1]))
    decoder = BulkDecoder(_ext.make_plan(cls, plan))
    return decoder if _agrees(cls, decoder, size) else None


def _agrees(cls: Any, decoder: BulkDecoder, size: int) -> bool:
    """True when ``decoder`` gives what ``from_bytes`` gives, value and type, on samples
    (built as a list and delivered one by one)."""
    rnd = random.Random(size)
    samples = [bytes(size), b"\xff" * size, bytes(rnd.randrange(256) for _ in range(size)),
               bytes(rnd.choice((0, 0, 65, 200)) for _ in range(size))]
    data = b"".join(samples)
    fast = decoder.build(data, size, 0, len(samples))
    delivered: list[Any] = []
    decoder.deliver(data, size, 0, len(samples), delivered.append, None, _reraise)
    if len(delivered) != len(fast):
        return False
    fast += delivered
    names = [f.name for f in dataclasses.fields(cls)]
    for i, rec in enumerate(fast):
        ref = cls.from_bytes(data, i % len(samples) * size)
        if type(rec) is not type(ref):
            return False
        for n in names:
            a, b = getattr(rec, n), getattr(ref, n)
            if type(a) is not type(b) or (a != b and not (a != a and b != b)):  # NaN == NaN
                return False
    return True


def _reraise(exc: BaseException) -> None:
    raise exc
