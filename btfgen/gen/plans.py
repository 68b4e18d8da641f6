"""How one C value maps onto ``struct`` format items and Python expressions.

A record's decoder is one ``struct.Struct`` covering the record plus a few
expressions per field over the unpacked tuple.  Each field contributes a
*plan*:

* :class:`ScalarPlan`: an int, bool, float, pointer, enum or ``char[N]``
  (one format item each), or an array of those (items flattened; decoded
  back into nested lists);
* :class:`RecordPlan`: a nested struct/union or an array of them, decoded by
  the nested class's own ``from_bytes`` (the parent's decode format skips
  those bytes, its encode format packs the nested ``to_bytes()``);
* :class:`BitRun`: consecutive bitfields sharing storage bytes, one unsigned
  storage item, each field extracted by shift and mask.

Expressions are plain strings of Python source: ``tv`` is the name of the
unpacked tuple, ``buf``/``off`` the buffer and base offset expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}


def int_code(size: int, signed: bool) -> str | None:
    """The ``struct`` code for an integer of ``size`` bytes, if there is one."""
    code = INT_CODES.get(size)
    if code is None:
        return None
    return code if signed else code.upper()


def _plus(base: str, k: int) -> str:
    if base == "0":
        return str(k)
    return base if k == 0 else f"{base} + {k}"


@dataclass(frozen=True)
class Scalar:
    """One format item and how to convert its raw value to/from Python.

    ``dconv``/``econv`` are ``str.format`` templates over ``{0}`` (the raw or
    Python value expression), or None for identity.
    """

    code: str
    size: int
    hint: str
    default: str
    dconv: str | None = None
    econv: str | None = None
    #: Module-level names the conversions refer to (for ordering).
    deps: tuple[str, ...] = ()

    def decode(self, raw: str) -> str:
        return self.dconv.format(raw) if self.dconv else raw

    def encode(self, value: str) -> str:
        return self.econv.format(value) if self.econv else value


class Plan:
    """Common interface of the plans (see the module docstring)."""

    size: int
    hint: str
    default: str

    def dfmt(self) -> list[str]:
        """Decode format items."""
        raise NotImplementedError

    def efmt(self) -> list[str]:
        """Encode format items."""
        raise NotImplementedError

    def nvals(self) -> int:
        """How many unpacked values :meth:`decode` consumes."""
        raise NotImplementedError

    def decode(self, tv: str, i: int, buf: str, off: str) -> str:
        """Expression for the Python value from ``tv[i:i + nvals()]``."""
        raise NotImplementedError

    def encode(self, value: str) -> list[str]:
        """Expressions (possibly starred) packing ``value`` into :meth:`efmt`."""
        raise NotImplementedError

    def deps(self) -> tuple[str, ...]:
        """Generated class names this plan refers to."""
        return ()


def _nest_hint(hint: str, dims: tuple[int, ...]) -> str:
    for _ in dims:
        hint = f"list[{hint}]"
    return hint


def _count(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _leaf_loops(value: str, depth: int) -> str:
    """Comprehension clauses binding ``x`` to each leaf of a ``depth``-deep nested list."""
    if depth == 1:
        return f"for x in {value}"
    loops = [f"for r0 in {value}"]
    for d in range(1, depth - 1):
        loops.append(f"for r{d} in r{d - 1}")
    loops.append(f"for x in r{depth - 2}")
    return " ".join(loops)


def _flatten(value: str, depth: int) -> str:
    """An iterable over the leaves of a ``depth``-deep nested list."""
    return value if depth == 1 else f"(x {_leaf_loops(value, depth)})"


@dataclass
class ScalarPlan(Plan):
    """A scalar, or a (multi-dimensional) array of scalars (``dims`` outer first)."""

    scalar: Scalar
    dims: tuple[int, ...] = ()
    size: int = field(init=False)
    hint: str = field(init=False)
    default: str = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.scalar.size * _count(self.dims)
        self.hint = _nest_hint(self.scalar.hint, self.dims)
        self.default = self._default()

    def _default(self) -> str:
        d = self.scalar.default
        if not self.dims:
            return d
        inner = f"[{d}] * {self.dims[-1]}"
        for n in reversed(self.dims[:-1]):
            inner = f"[{inner} for _ in range({n})]"
        return f"field(default_factory=lambda: {inner})"

    def _items(self) -> list[str]:
        n = _count(self.dims)
        if n == 0:
            return []
        if self.scalar.code.endswith("s"):
            return [self.scalar.code] * n
        return [self.scalar.code if n == 1 else f"{n}{self.scalar.code}"]

    def dfmt(self) -> list[str]:
        return self._items()

    def efmt(self) -> list[str]:
        return self._items()

    def nvals(self) -> int:
        return _count(self.dims)

    def decode(self, tv: str, i: int, buf: str, off: str) -> str:
        if not self.dims:
            return self.scalar.decode(f"{tv}[{i}]")
        return self._decode_level(tv, 0, str(i))

    def _decode_level(self, tv: str, level: int, base: str) -> str:
        dims = self.dims
        if level == len(dims) - 1:
            n = dims[-1]
            if n == 0:
                return "[]"
            end = f"{base} + {n}" if not base.isdigit() else str(int(base) + n)
            sl = f"{tv}[{base}:{end}]"
            if self.scalar.dconv is None:
                return f"list({sl})"
            return f"[{self.scalar.decode('x')} for x in {sl}]"
        stride = _count(dims[level + 1:])
        k = f"k{level}"
        inner = self._decode_level(tv, level + 1, f"{base} + {k} * {stride}")
        return f"[{inner} for {k} in range({dims[level]})]"

    def encode(self, value: str) -> list[str]:
        if not self.dims:
            return [self.scalar.encode(value)]
        if _count(self.dims) == 0:
            return []
        flat = _flatten(value, len(self.dims))
        if self.scalar.econv is None:
            return [f"*{flat}"]
        if len(self.dims) == 1:
            return [f"*({self.scalar.encode('x')} for x in {value})"]
        return [f"*({self.scalar.encode('y')} for y in {flat})"]

    def deps(self) -> tuple[str, ...]:
        return self.scalar.deps


@dataclass
class RecordPlan(Plan):
    """A nested record (``cls``, ``rsize`` bytes) or an array of them at byte ``offset``."""

    cls: str
    rsize: int
    offset: int
    dims: tuple[int, ...] = ()
    #: The record ends in a flexible array: nested by value, it gets exactly
    #: its SIZE bytes (the array is empty, as in C).
    flex: bool = False
    size: int = field(init=False)
    hint: str = field(init=False)
    default: str = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.rsize * _count(self.dims)
        self.hint = _nest_hint(self.cls, self.dims)
        if not self.dims:
            self.default = f"field(default_factory={self.cls})"
        else:
            inner = f"{self.cls}()"
            for n in reversed(self.dims):
                inner = f"[{inner} for _ in range({n})]"
            self.default = f"field(default_factory=lambda: {inner})"

    def dfmt(self) -> list[str]:
        return [f"{self.size}x"] if self.size else []

    def efmt(self) -> list[str]:
        return [f"{self.size}s"] if self.size else []

    def nvals(self) -> int:
        return 0

    def decode(self, tv: str, i: int, buf: str, off: str) -> str:
        return self._decode_level(buf, 0, _plus(off, self.offset))

    def _decode_level(self, buf: str, level: int, base: str) -> str:
        if level == len(self.dims):
            if self.flex:
                return f"{self.cls}.from_bytes(bytes({buf}[{base}:{base} + {self.rsize}]))"
            return f"{self.cls}.from_bytes({buf}, {base})"
        stride = self.rsize * _count(self.dims[level + 1:])
        k = f"k{level}"
        inner = self._decode_level(buf, level + 1, f"{base} + {k} * {stride}")
        return f"[{inner} for {k} in range({self.dims[level]})]"

    def encode(self, value: str) -> list[str]:
        if not self.size:
            return []
        if not self.dims:
            return [f"{value}.to_bytes()"]
        return [f'b"".join(x.to_bytes() {_leaf_loops(value, len(self.dims))})']

    def deps(self) -> tuple[str, ...]:
        return (self.cls,)


def parenthesized(expr: str) -> str:
    """``expr`` in parentheses, unless it is in a pair already (``((x))`` is UP034)."""
    depth = 0
    for i, ch in enumerate(expr):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and i < len(expr) - 1:
            return f"({expr})"
    return expr if expr.startswith("(") else f"({expr})"


@dataclass(frozen=True)
class BitMember:
    """One bitfield of a :class:`BitRun`: its bits relative to the run start."""

    attr_index: int
    rel_bit: int
    width: int
    signed: bool
    #: "int", "bool" or the name of an enum's value map (``_Color_VALUES``).
    kind: str = "int"
    hint: str = "int"


@dataclass
class BitRun:
    """Bitfields whose bytes overlap, read as one unsigned integer of ``size`` bytes."""

    size: int
    byteorder: str
    members: list[BitMember]

    def code(self) -> str:
        return int_code(self.size, False) or f"{self.size}s"

    def mask(self) -> int:
        """The storage bits the members own (for ``raw``)."""
        m = 0
        for b in self.members:
            m |= ((1 << b.width) - 1) << self._shift(b)
        return m

    def raw(self, tv: str, i: int) -> str:
        """The storage as an unsigned int."""
        return self._raw(tv, i)

    def _raw(self, tv: str, i: int) -> str:
        if self.code().endswith("s"):
            return f'int.from_bytes({tv}[{i}], "{self.byteorder}")'
        return f"{tv}[{i}]"

    def _shift(self, m: BitMember) -> int:
        if self.byteorder == "little":
            return m.rel_bit
        return self.size * 8 - m.rel_bit - m.width

    def decode(self, m: BitMember, tv: str, i: int) -> str:
        raw = self._raw(tv, i)
        shift = self._shift(m)
        mask = (1 << m.width) - 1
        bits = f"{raw} >> {shift} & {mask:#x}" if shift else f"{raw} & {mask:#x}"
        if m.signed:
            sb = 1 << (m.width - 1)
            bits = f"({bits} ^ {sb:#x}) - {sb:#x}"
        if m.kind == "bool":
            return f"bool({bits})"
        if m.kind != "int":
            return f"{m.kind}.get({bits}, {bits})"
        return bits

    def encode(self, values: list[str]) -> str:
        """The storage item for ``values`` (one expression per member)."""
        expr = self.encode_int(values)
        if self.code().endswith("s"):
            return f'{parenthesized(expr)}.to_bytes({self.size}, "{self.byteorder}")'
        return expr

    def encode_int(self, values: list[str]) -> str:
        """The storage as an int."""
        parts = []
        for m, value in zip(self.members, values, strict=True):
            mask = (1 << m.width) - 1
            shift = self._shift(m)
            part = f"({value} & {mask:#x})"
            parts.append(f"{part} << {shift}" if shift else part)
        return " | ".join(parts) if parts else "0"
