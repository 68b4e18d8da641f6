"""Value codecs used by generated modules for map keys/values and globals.

A codec turns the raw bytes of one C value into a Python value and back.  Every
codec has ``size`` (bytes), ``decode(buf, offset=0)`` and ``encode(value)``
(exactly ``size`` bytes).  Generated record classes are wrapped by
:class:`RecordCodec`; their own ``from_bytes``/``to_bytes`` do the work.

This module is part of the runtime: it imports only the standard library and
cffi (re-exporting ``FFI`` for generated modules: a lazy one, which parses their
declarations on first use, see :mod:`btfgen.runtime.lazy_ffi`), never the generator.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar, Union

from btfgen.runtime.lazy_ffi import LazyFFI as FFI

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FFI", "Buffer", "Codec", "IntCodec", "BigIntCodec", "BoolCodec", "FloatCodec", "CStrCodec",
    "RawCodec", "EnumCodec", "ArrayCodec", "RecordCodec", "Record", "cstr",
]

#: What decoders accept.
Buffer = Union[bytes, bytearray, memoryview]

T = TypeVar("T")
E = TypeVar("E")
R = TypeVar("R", bound="Record")


def cstr(raw: bytes) -> bytes:
    """The bytes of a C ``char[]`` up to (not including) the first NUL."""
    return raw.partition(b"\0")[0]


class Record(Protocol):
    """What generated record classes provide."""

    SIZE: ClassVar[int]

    @classmethod
    def from_bytes(cls, buf: Buffer, offset: int = 0) -> Self: ...

    def to_bytes(self) -> bytes: ...


class Codec(Generic[T]):
    """Base class: ``size`` bytes <-> a value of type ``T``."""

    size: int

    def decode(self, buf: Buffer, offset: int = 0) -> T:
        """The value stored at ``buf[offset:offset + size]``."""
        raise NotImplementedError

    def encode(self, value: T) -> bytes:
        """Exactly ``size`` bytes for ``value``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self.size}>"


class _StructCodec(Codec[T]):
    """A codec for one ``struct`` module format item."""

    def __init__(self, fmt: str) -> None:
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size

    def decode(self, buf: Buffer, offset: int = 0) -> T:
        value: T = self._struct.unpack_from(buf, offset)[0]
        return value

    def encode(self, value: T) -> bytes:
        return self._struct.pack(value)


class IntCodec(_StructCodec[int]):
    """An integer, e.g. ``IntCodec("<I")`` for ``__u32`` (pointers too)."""


class BoolCodec(_StructCodec[bool]):
    """C ``_Bool`` (``BoolCodec("<?")``)."""


class FloatCodec(_StructCodec[float]):
    """``float``/``double`` (``FloatCodec("<d")``)."""


class BigIntCodec(Codec[int]):
    """An integer of a size ``struct`` has no format for (e.g. ``__int128``)."""

    def __init__(self, size: int, signed: bool, byteorder: str = "little") -> None:
        self.size = size
        self._signed = signed
        self._order = byteorder

    def decode(self, buf: Buffer, offset: int = 0) -> int:
        raw = bytes(buf[offset:offset + self.size])
        if len(raw) != self.size:
            raise ValueError(f"need {self.size} bytes at offset {offset}")
        return int.from_bytes(raw, self._order, signed=self._signed)  # type: ignore[arg-type]

    def encode(self, value: int) -> bytes:
        return value.to_bytes(self.size, self._order, signed=self._signed)  # type: ignore[arg-type]


class CStrCodec(Codec[bytes]):
    """``char[N]``: bytes up to the first NUL; encoding NUL-pads (and truncates)."""

    def __init__(self, size: int) -> None:
        self._struct = struct.Struct(f"{size}s")
        self.size = size

    def decode(self, buf: Buffer, offset: int = 0) -> bytes:
        raw: bytes = self._struct.unpack_from(buf, offset)[0]
        return raw.partition(b"\0")[0]

    def encode(self, value: bytes) -> bytes:
        return self._struct.pack(value)


class RawCodec(Codec[bytes]):
    """Opaque bytes of a fixed size (maps without BTF types, odd types)."""

    def __init__(self, size: int) -> None:
        self._struct = struct.Struct(f"{size}s")
        self.size = size

    def decode(self, buf: Buffer, offset: int = 0) -> bytes:
        raw: bytes = self._struct.unpack_from(buf, offset)[0]
        return raw

    def encode(self, value: bytes) -> bytes:
        if len(value) != self.size:
            raise ValueError(f"expected {self.size} bytes, got {len(value)}")
        return bytes(value)


class EnumCodec(Codec[Union[E, int]]):
    """An enum: the member of ``cls`` for known values, a plain int otherwise."""

    def __init__(self, cls: type[E], fmt: str) -> None:
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size
        self._members: dict[int, E] = {int(m): m for m in cls}  # type: ignore[attr-defined]

    def decode(self, buf: Buffer, offset: int = 0) -> E | int:
        value: int = self._struct.unpack_from(buf, offset)[0]
        return self._members.get(value, value)

    def encode(self, value: E | int) -> bytes:
        return self._struct.pack(value)


class ArrayCodec(Codec[list[T]]):
    """``count`` consecutive elements decoded by ``element``."""

    def __init__(self, element: Codec[T], count: int) -> None:
        self.element = element
        self.count = count
        self.size = element.size * count

    def decode(self, buf: Buffer, offset: int = 0) -> list[T]:
        step = self.element.size
        dec = self.element.decode
        return [dec(buf, offset + i * step) for i in range(self.count)]

    def encode(self, value: list[T]) -> bytes:
        if len(value) != self.count:
            raise ValueError(f"expected {self.count} elements, got {len(value)}")
        return b"".join(self.element.encode(v) for v in value)


class RecordCodec(Codec[R]):
    """A generated record class (struct or union).

    ``min_size`` (default: ``SIZE``) is the shortest sample of this record a
    perf/ring buffer accepts.  Some programs send variable-length records, a
    struct and only the used part of its trailing array (execsnoop sends
    ``40 + args_size`` bytes of a 7720-byte ``struct event``); the generator
    passes the smallest size the bytecode sends, and :meth:`decode_sample`
    zero-pads such samples to decode them.
    """

    def __init__(self, cls: type[R], min_size: int | None = None) -> None:
        self.cls = cls
        self.size = cls.SIZE
        self.min_size = self.size if min_size is None else max(0, min(min_size, self.size))

    def decode(self, buf: Buffer, offset: int = 0) -> R:
        return self.cls.from_bytes(buf, offset)

    def decode_sample(self, buf: Buffer, offset: int, size: int) -> R:
        """Decode a sample of ``size`` bytes at ``buf[offset:]``: one shorter than
        ``size`` but not than ``min_size`` decodes as if zero-padded (ValueError if
        it is shorter than ``min_size``); bytes past the sample are never read."""
        if size >= self.size:
            return self.cls.from_bytes(buf, offset)
        if size < self.min_size:
            raise ValueError(f"a {size}-byte sample is shorter than its record "
                             f"({self.min_size} bytes at least, {self.size} in full)")
        return self.cls.from_bytes(bytes(buf[offset:offset + size]).ljust(self.size, b"\0"))

    def encode(self, value: R) -> bytes:
        return value.to_bytes()
