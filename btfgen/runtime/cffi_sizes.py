"""Giving enums and empty structs of a ``cffi.FFI`` the sizes BTF says they have.

The one rule both sides use: the generator when it checks a module's cdef
against BTF, :class:`btfgen.runtime.sized_ffi.SizedFFI` when a module's ``ffi``
is first used.  It imports nothing from btfgen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["apply_sizes"]


def apply_sizes(ffi: Any, enums: Mapping[str, str], empty: Sequence[str]) -> None:
    """Set the sizes of declared but not yet used enums and empty structs of the
    ``cffi.FFI`` ``ffi`` (see the module docstring)."""
    from cffi import model

    declarations = ffi._parser._declarations
    for tag, base in enums.items():
        declarations[tag][0].baseinttype = model.PrimitiveType(base)
    for tag in empty:
        declarations[tag][0].fixedlayout = ([], [], 0, 1)
