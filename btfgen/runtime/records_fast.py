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

import dataclasses
import functools
import os
import random
from collections.abc import Callable
from typing import Any

from btfgen.runtime.batch import c_type_of

_ext: Any
try:
    if os.environ.get("BTFGEN_NO_DRAIN"):
        raise ImportError("disabled by BTFGEN_NO_DRAIN")
    from btfgen.runtime import _records as _ext  # type: ignore[attr-defined, no-redef, unused-ignore]
except ImportError:
    _ext = None

K_U, K_I, K_BOOL, K_FLOAT, K_CSTR = 1, 2, 3, 4, 5


class BulkDecoder:
    """The C record builders of one record class (see :func:`bulk_decoder`)."""

    __slots__ = ("build", "deliver", "perf_deliver", "ringbuf_deliver")

    def __init__(self, plan: Any) -> None:
        # partials, not closures: no Python frame per call
        #: ``build(data, stride, start, count) -> list`` of records at
        #: ``data[start + i * stride]``.
        self.build: Callable[[Any, int, int, int], list[Any]] = functools.partial(
            _ext.build, plan)
        #: ``deliver(data, stride, start, count, callback, cpu, fail)``: builds
        #: each record and calls ``callback(cpu, rec)`` (``callback(rec)`` when
        #: ``cpu`` is None); a callback's exception goes to ``fail(exc)`` and
        #: delivery goes on.
        self.deliver: Callable[[Any, int, int, int, Callable[..., Any], int | None,
                                Callable[[BaseException], None]], None] = functools.partial(
            _ext.deliver, plan)
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
