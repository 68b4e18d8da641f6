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

import dataclasses
import operator
import struct
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, Union

from btfgen.runtime.lazy_ffi import LazyFFI as FFI

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "FFI", "Buffer", "Codec", "IntCodec", "BigIntCodec", "BoolCodec", "FloatCodec", "CStrCodec",
    "RawCodec", "EnumCodec", "ArrayCodec", "RecordCodec", "Record", "cstr", "frozen_record",
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

    def decode_key(self, buf: Buffer, offset: int = 0) -> T:
        """The value at ``offset`` as a map key: hashable and ordered by value where
        :meth:`decode` gives a mutable record (see :class:`RecordCodec`)."""
        return self.decode(buf, offset)

    def describe(self) -> str:
        """What ``encode`` takes, for error messages (``"int (u32)"``)."""
        return f"a {self.size}-byte value"

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

    def describe(self) -> str:
        code = self._struct.format[-1]
        return f"int ({'s' if code.islower() else 'u'}{self.size * 8})"


class BoolCodec(_StructCodec[bool]):
    """C ``_Bool`` (``BoolCodec("<?")``)."""

    def describe(self) -> str:
        return "bool"


class FloatCodec(_StructCodec[float]):
    """``float``/``double`` (``FloatCodec("<d")``)."""

    def describe(self) -> str:
        return f"float ({self.size * 8}-bit)"


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

    def describe(self) -> str:
        return f"int ({'s' if self._signed else 'u'}{self.size * 8})"


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

    def describe(self) -> str:
        return f"bytes (char[{self.size}])"


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

    def describe(self) -> str:
        return f"bytes of length {self.size}"


class EnumCodec(Codec[Union[E, int]]):
    """An enum: the member of ``cls`` for known values, a plain int otherwise."""

    def __init__(self, cls: type[E], fmt: str) -> None:
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size
        self._members: dict[int, E] = {int(m): m for m in cls}  # type: ignore[attr-defined]
        self._name = cls.__name__

    def decode(self, buf: Buffer, offset: int = 0) -> E | int:
        value: int = self._struct.unpack_from(buf, offset)[0]
        return self._members.get(value, value)

    def encode(self, value: E | int) -> bytes:
        return self._struct.pack(value)

    def describe(self) -> str:
        return f"{self._name} or int"


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

    def describe(self) -> str:
        return f"a list of {self.count} x {self.element.describe()}"


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
        if not isinstance(value, self.cls):
            raise TypeError(f"expected {self.cls.__name__}, got {type(value).__name__}")
        return value.to_bytes()

    def decode_key(self, buf: Buffer, offset: int = 0) -> R:
        """A :func:`frozen <frozen_record>` snapshot of the record at ``offset`` (for
        record classes that are not dataclasses: the record as decoded)."""
        record = self.cls.from_bytes(buf, offset)
        if _compare_names(self.cls) is None:
            return record
        return frozen_record(record)

    def describe(self) -> str:
        return self.cls.__name__


_FROZEN: dict[type, type] = {}


_SCALARS = (int, bytes, float, bool)
_NAMES: dict[type, tuple[str, ...] | None] = {}


def _compared(value: object) -> object:
    """``value`` as something hashable and ordered: lists as tuples, records as
    tuples of their compared fields (recursively)."""
    cls = type(value)
    if cls in _SCALARS:
        return value
    if cls is list:
        return tuple(_compared(v) for v in value)  # type: ignore[attr-defined]
    names = _compare_names(cls)
    if names is None:
        return value
    return tuple(_compared(getattr(value, n)) for n in names)


def _compare_names(cls: type) -> tuple[str, ...] | None:
    """The fields ``__eq__`` compares, for a dataclass (None for other types)."""
    try:
        return _NAMES[cls]
    except KeyError:
        pass
    names = (tuple(f.name for f in dataclasses.fields(cls) if f.compare)
             if dataclasses.is_dataclass(cls) else None)
    _NAMES[cls] = names
    return names


def frozen_record(record: R) -> R:
    """A frozen, hashable, ordered copy of a generated record (what map keys come as).

    The copy is an instance of a subclass of the record's class (so ``isinstance``,
    attribute access, ``to_bytes`` and the map's key codec take it as is) that
    refuses assignment, hashes and compares by field values (arrays and nested
    records included) and orders like the tuple of its fields: ``dict(m.items())``
    and ``sorted(m.items())`` work on struct-keyed maps.  It equals a plain record
    with the same fields.  ``dataclasses.replace(key, pid=1)`` makes a changed copy.
    """
    cls = type(record)
    frozen = _FROZEN.get(cls) or _make_frozen(cls)
    if cls is frozen:
        return record
    copy: Any = object.__new__(frozen)
    for name in frozen._slot_names:  # type: ignore[attr-defined]
        object.__setattr__(copy, name, getattr(record, name))
    return copy  # type: ignore[no-any-return]


def _make_frozen(cls: type) -> type:
    names = _compare_names(cls)
    if names is None:
        raise TypeError(f"{cls.__name__} is not a generated record class")
    slot_names = tuple(f.name for f in dataclasses.fields(cls))

    def key(obj: object) -> object:
        try:
            return obj._btfgen_key  # type: ignore[attr-defined]
        except AttributeError:
            pass
        found = tuple(_compared(getattr(obj, n)) for n in names)
        if type(obj) is frozen:  # a snapshot: compute once
            object.__setattr__(obj, "_btfgen_key", found)
        return found

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        plain = cls(*args, **kwargs)
        for n in slot_names:
            object.__setattr__(self, n, getattr(plain, n))

    def __setattr__(self: object, name: str, value: object = None) -> None:
        raise AttributeError(f"{cls.__name__} keys read from a map are frozen snapshots; "
                             f"dataclasses.replace(key, {name}=...) makes a changed copy")

    def __reduce__(self: object) -> tuple[Any, tuple[object]]:
        plain: Any = object.__new__(cls)
        for n in slot_names:
            object.__setattr__(plain, n, getattr(self, n))
        return frozen_record, (plain,)

    def compare(op: Any) -> Any:
        def method(self: object, other: object) -> Any:
            if not isinstance(other, cls):
                return NotImplemented
            return op(key(self), key(other))
        return method

    frozen = type(cls.__name__, (cls,), {
        "__slots__": ("_btfgen_key",), "__module__": cls.__module__,
        "__qualname__": cls.__qualname__, "__doc__": cls.__doc__, "_slot_names": slot_names,
        "__init__": __init__,
        "__setattr__": __setattr__, "__delattr__": __setattr__, "__reduce__": __reduce__,
        "__copy__": lambda self: self, "__deepcopy__": lambda self, memo: self,
        "__hash__": lambda self: hash(key(self)),
        "__eq__": compare(operator.eq), "__ne__": compare(operator.ne),
        "__lt__": compare(operator.lt), "__le__": compare(operator.le),
        "__gt__": compare(operator.gt), "__ge__": compare(operator.ge),
    })
    _FROZEN[cls] = _FROZEN[frozen] = frozen
    return frozen
