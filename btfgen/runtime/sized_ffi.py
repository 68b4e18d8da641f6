"""A lazy cffi ``FFI`` that gives enums and empty structs BTF's sizes.

cffi sizes every enum as ``int`` or ``long`` (C has no syntax for an enum's
size; clang's 8-byte ENUM and packed 1- and 2-byte enums exist in BTF) and
every empty struct as 1 byte (the kernel has 0-byte ones: ``struct kmap_ctrl``).
cffi builds a declared type's layout on first use, from the parsed declaration:
this FFI sets the underlying integer type of such enums, and a fixed 0-byte
layout for such structs, in those declarations once they are parsed and before
anything uses them.  (``baseinttype`` and ``fixedlayout`` are what cffi's own
API mode fills in from a compiler; they are stable across cffi 1.x and 2.x.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from btfgen.runtime.cffi_sizes import apply_sizes
from btfgen.runtime.lazy_ffi import LazyFFI

__all__ = ["SizedFFI"]


class SizedFFI(LazyFFI):
    """:class:`LazyFFI` whose ``enums`` (tag -> fixed-width integer type, e.g.
    ``{"enum e": "uint8_t"}``) and ``empty`` struct/union tags get BTF's sizes."""

    def __init__(self, enums: Mapping[str, str] | None = None,
                 empty: Sequence[str] = ()) -> None:
        super().__init__()
        self.__dict__["_SizedFFI__sizes"] = (dict(enums or {}), tuple(empty))

    def real(self) -> Any:
        """The ``cffi.FFI``, declared and sized now if it was not yet."""
        fresh = self.__dict__["_LazyFFI__real"] is None
        real = super().real()
        if fresh:
            apply_sizes(real, *self.__dict__["_SizedFFI__sizes"])
        return real
