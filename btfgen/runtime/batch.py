"""Batches of fixed-size records: one contiguous buffer, decoded in bulk.

:meth:`PerfBuffer.read_batch() <btfgen.runtime.perf.PerfBuffer.read_batch>`
returns a :class:`PerfBatch`: the records back to back (``stride`` bytes each)
and which CPU each run of records came from.  ``records()`` decodes them into
the generated record classes; ``array()`` views them as a numpy structured
array (numpy is the optional ``numpy`` extra) whose dtype comes from the
record's C layout (:func:`record_dtype`): explicit offsets, nested structs,
unions as overlapping fields, arrays as sub-arrays, ``char[N]`` as ``S<N>``.
Bitfields have no numpy type: :meth:`PerfBatch.column` derives them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

from btfgen.runtime.codec import Codec, RecordCodec
from btfgen.runtime.records_fast import bulk_decoder, c_type_of

R = TypeVar("R")

__all__ = ["Bitfield", "FlexInfo", "PerfBatch", "RecordLayout", "c_type_of", "decode_exact",
           "flex_info", "record_dtype", "record_layout"]


class ArraySource(Protocol):
    """Where a batch's records live, able to view them as a numpy array (a drain
    buffer: :class:`btfgen.runtime.drain.PooledBuffer`)."""

    def array(self, dtype: Any, count: int) -> Any:
        """The first ``count`` items of ``dtype``, read-only, without a copy."""
        ...


@dataclasses.dataclass(frozen=True)
class Bitfield:
    """A bitfield member: ``bits`` bits at bit ``shift`` of the bytes at ``offset``."""

    name: str
    offset: int
    shift: int
    bits: int
    signed: bool


@dataclasses.dataclass(frozen=True)
class RecordLayout:
    """A record's numpy dtype and the bitfields it cannot express."""

    dtype: Any
    bitfields: dict[str, Bitfield]


def _np() -> Any:
    try:
        import numpy
    except ImportError:
        raise ImportError("numpy is needed for structured arrays: pip install "
                          "'btfgen[numpy]'") from None
    return numpy


_layouts: dict[Any, RecordLayout] = {}
#: Each codec's dtype, for PerfBatch.array: one lookup per batch instead of
#: record_dtype's calls (~10 us less per batch measured cold, after a sleep).
_codec_dtypes: dict[Any, Any] = {}


def record_layout(record: Any, ffi: Any = None, spelling: str | None = None) -> RecordLayout:
    """The :class:`RecordLayout` of a generated record class (or codec of one).

    The layout comes from the ``ffi`` declarations of the class's generated
    module (``TYPES`` names its C spelling); pass ``ffi`` and ``spelling`` for
    other classes, or give the class a ``DTYPE`` attribute.
    """
    cls = record.cls if isinstance(record, RecordCodec) else record
    key = (cls, spelling)
    if key in _layouts:
        return _layouts[key]
    given = getattr(cls, "DTYPE", None)
    if given is not None and ffi is None:
        layout = RecordLayout(_np().dtype(given), {})
    else:
        if ffi is None or spelling is None:
            found = c_type_of(cls)
            if found is None:
                raise TypeError(f"no C layout known for {cls!r}: not a generated record "
                                "class (pass ffi= and spelling=, or set DTYPE)")
            ffi, ctype = found
        else:
            ctype = ffi.typeof(spelling)
        bitfields: dict[str, Bitfield] = {}
        layout = RecordLayout(_ctype_dtype(ffi, ctype, 0, bitfields, ""), bitfields)
    _layouts[key] = layout
    return layout


def record_dtype(record: Any, ffi: Any = None, spelling: str | None = None) -> Any:
    """The numpy structured dtype of a record (see :func:`record_layout`)."""
    return record_layout(record, ffi, spelling).dtype


def _ctype_dtype(ffi: Any, t: Any, base: int, bitfields: dict[str, Bitfield],
                 prefix: str) -> Any:
    np = _np()
    kind = t.kind
    if kind in ("struct", "union"):
        names: list[str] = []
        formats: list[Any] = []
        offsets: list[int] = []
        for name, f in t.fields or ():
            if not name:
                continue
            if f.bitsize >= 0:
                ft = f.type
                signed = ft.kind == "primitive" and int(ffi.cast(ft, -1)) < 0
                bitfields[prefix + name] = Bitfield(prefix + name, base + f.offset,
                                                    f.bitshift, f.bitsize, signed)
                continue
            names.append(name)
            # Nested bitfields are addressed from the record start: keep absolute offsets.
            formats.append(_ctype_dtype(ffi, f.type, base + f.offset, bitfields,
                                        f"{prefix}{name}."))
            offsets.append(f.offset)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": ffi.sizeof(t)})
    if kind == "array":
        item = t.item
        if item.kind == "primitive" and item.cname == "char":
            return np.dtype(f"S{t.length}")
        return np.dtype((_ctype_dtype(ffi, item, base, {}, prefix), (t.length,)))
    if kind == "pointer":
        return np.dtype(f"=u{ffi.sizeof(t)}")
    if kind == "enum":
        size = ffi.sizeof(t)
        negative = any(v < 0 for v in (t.elements or {}))
        return np.dtype(f"={'i' if negative else 'u'}{size}")
    if kind == "primitive":
        size = ffi.sizeof(t)
        name = t.cname
        if name == "_Bool":
            return np.dtype("?")
        if name in ("float", "double"):
            return np.dtype(f"=f{size}")
        if name == "char":
            return np.dtype("S1")
        if name == "long double":
            return np.dtype(f"V{size}")
        signed = int(ffi.cast(t, -1)) < 0
        return np.dtype(f"={'i' if signed else 'u'}{size}")
    return np.dtype(f"V{ffi.sizeof(t)}")


class PerfBatch(Generic[R]):
    """Records drained from a perf or ring buffer in one call.

    ``data`` (bytes or a read-only memoryview of the drain buffer, which is not
    reused while the batch or an array on it is alive) holds ``len(batch)``
    records of ``stride`` bytes (each sample cut or zero-padded to the record
    size); ``segments`` lists ``(cpu, count)`` runs in order.  ``sizes`` (or
    None when every sample was at least a record) holds each sample's raw size.

    ``packed=True`` (records ending in a flexible array): each sample is whole,
    ``sizes[i]`` bytes, the next one 8-byte aligned after it; ``records()``
    decodes each from its own bytes, ``array()`` copies the fixed part of each.
    """

    __slots__ = ("data", "codec", "stride", "segments", "sizes", "source", "packed")

    def __init__(self, data: bytes | memoryview, codec: Codec[R], segments: list[tuple[int, int]],
                 sizes: list[int] | None = None, source: ArraySource | None = None,
                 packed: bool = False) -> None:
        self.data = data
        self.codec = codec
        self.stride = codec.size
        self.segments = segments
        self.sizes = sizes
        #: The drain buffer ``data`` views from its start, when it does: array()
        #: slices that buffer's cached array instead of making one.
        self.source = source
        self.packed = packed and sizes is not None

    def __len__(self) -> int:
        if self.packed:
            return len(self.sizes or ())
        return len(self.data) // self.stride if self.stride else 0

    def _check_sizes(self) -> None:
        """Samples shorter than the record decode zero-padded (variable-length
        records), down to the codec's ``min_size``; shorter ones are an error."""
        if self.sizes is not None:
            least = getattr(self.codec, "min_size", self.stride)
            short = [i for i, s in enumerate(self.sizes) if s < least]
            if short:
                raise ValueError(f"{len(short)} samples shorter than the {least}-byte "
                                 f"record (first: #{short[0]}, {self.sizes[short[0]]} bytes)")

    def _offsets(self) -> list[int]:
        offsets, pos = [], 0
        for size in self.sizes or ():
            offsets.append(pos)
            pos += (size + 7) & ~7
        return offsets

    def records(self) -> list[R]:
        """Every record decoded (generated record objects)."""
        self._check_sizes()
        codec = self.codec
        data, stride = self.data, self.stride
        if self.packed:
            assert self.sizes is not None
            flex = flex_info(codec.cls) if isinstance(codec, RecordCodec) else None
            return [decode_exact(codec, data, off, size, flex)
                    for off, size in zip(self._offsets(), self.sizes, strict=True)]
        if isinstance(codec, RecordCodec):
            bulk = bulk_decoder(codec.cls)
            if bulk is not None:
                return bulk.build(data, stride, 0, len(self))
        dec = codec.cls.from_bytes if isinstance(codec, RecordCodec) else codec.decode
        return [dec(data, off) for off in range(0, len(data), stride)]

    def __iter__(self) -> Iterator[R]:
        return iter(self.records())

    def cpus(self) -> list[int]:
        """The CPU of each record."""
        out: list[int] = []
        for cpu, count in self.segments:
            out.extend([cpu] * count)
        return out

    def array(self, dtype: Any = None) -> Any:
        """The records as a read-only numpy structured array (no copy; packed
        batches copy the fixed part of each record).

        ``dtype`` defaults to :func:`record_dtype` of the record type.
        """
        if self.sizes is not None:
            self._check_sizes()
        if dtype is None:
            dtype = _codec_dtypes.get(self.codec)
            if dtype is None:
                dtype = _codec_dtypes[self.codec] = record_dtype(self.codec)
        count = len(self)
        if self.packed:
            assert self.sizes is not None
            stride, data = self.stride, self.data
            fixed = b"".join(bytes(data[off:off + min(size, stride)]).ljust(stride, b"\0")
                             for off, size in zip(self._offsets(), self.sizes, strict=True))
            return _np().frombuffer(fixed, dtype=dtype, count=count)
        if self.source is not None and dtype.itemsize == self.stride:
            return self.source.array(dtype, count)
        return _np().frombuffer(self.data, dtype=dtype, count=count)

    def cpu_array(self) -> Any:
        """The CPU of each record as a numpy array."""
        np = _np()
        if not self.segments:
            return np.zeros(0, dtype=np.int32)
        cpus = np.array([cpu for cpu, _count in self.segments], dtype=np.int32)
        return np.repeat(cpus, [count for _cpu, count in self.segments])

    def column(self, name: str) -> Any:
        """One column by name: a dtype field (``"pair.lo"`` for nested ones) or a
        bitfield, derived from the record bytes (numpy has no bitfield type)."""
        layout = record_layout(self.codec)
        bf = layout.bitfields.get(name)
        if bf is None:
            arr = self.array(layout.dtype)
            for part in name.split("."):
                arr = arr[part]
            return arr
        np = _np()
        flat = self.array(np.dtype((np.void, self.stride))) if self.packed else self.data
        raw = np.frombuffer(flat, dtype=np.uint8).reshape(-1, self.stride)
        first = bf.offset + bf.shift // 8
        last = bf.offset + (bf.shift + bf.bits - 1) // 8
        word = np.zeros(len(raw), dtype=np.uint64)
        for i, pos in enumerate(range(first, last + 1)):
            word |= raw[:, pos].astype(np.uint64) << np.uint64(8 * i)
        value = (word >> np.uint64(bf.shift % 8)) & np.uint64((1 << bf.bits) - 1)
        if not bf.signed:
            return value
        sign = np.uint64(1 << (bf.bits - 1))
        return (value ^ sign).astype(np.int64) - np.int64(1 << (bf.bits - 1))

    def columns(self, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Top-level fields and bitfields as a dict of numpy arrays."""
        layout = record_layout(self.codec)
        if names is None:
            names = [*layout.dtype.names, *layout.bitfields]
        return {n: self.column(n) for n in names}

    def __repr__(self) -> str:
        return f"<PerfBatch {len(self)} records, {len(self.segments)} segments>"


@dataclasses.dataclass(frozen=True)
class FlexInfo:
    """Where a record's flexible array member is: its field, byte offset and
    element size."""

    name: str
    offset: int
    esize: int


def flex_info(cls: Any) -> FlexInfo | None:
    """The flexible array member of a generated record class (its ``from_bytes``
    reads past ``SIZE`` bytes when there are more), or None."""
    size = int(getattr(cls, "SIZE", 0))
    try:
        short, long = cls.from_bytes(b"A" * size), cls.from_bytes(b"A" * (size + 64))
        for f in dataclasses.fields(cls):
            a, b = getattr(short, f.name), getattr(long, f.name)
            if a != b and isinstance(a, (bytes, list)) and len(b) > len(a):
                esize = 64 // (len(b) - len(a))
                return FlexInfo(f.name, size - len(a) * esize, esize)
    except Exception:  # noqa: BLE001 - a class that cannot decode this is not flexible
        pass
    return None


def decode_exact(codec: Codec[R], data: Any, offset: int, size: int,
                 flex: FlexInfo | None = None) -> R:
    """One sample of ``size`` bytes at ``data[offset:]``, decoded from exactly
    its own bytes: a flexible array (``flex``) holds the rest of this sample, no
    more; a sample shorter than the record decodes zero-padded (ValueError below
    the codec's ``min_size``), its flexible array cut to what the sample has."""
    if size < codec.size and isinstance(codec, RecordCodec):
        rec: R = codec.decode_sample(data, offset, size)
        if flex is not None:
            arr = getattr(rec, flex.name)
            setattr(rec, flex.name, arr[:max(0, size - flex.offset) // flex.esize])
        return rec
    return codec.decode(data[offset:offset + size], 0)
