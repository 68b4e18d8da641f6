"""Exceptions raised by the generator for bad input.

Every error carries a one-line message; the CLI prints ``btfgen: FILE: message``
and exits 1.  The runtime has its own exceptions in :mod:`btfgen.runtime`.
"""

from __future__ import annotations


class BtfgenError(Exception):
    """Base class for every error btfgen reports to its user."""


class BtfError(BtfgenError):
    """The BTF data is malformed (bad header, reference out of range, loop ...)."""


class ObjectError(BtfgenError):
    """The input file is not a usable BPF object (not ELF, not EM_BPF, no .BTF ...)."""
