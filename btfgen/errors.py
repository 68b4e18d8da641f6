"""Exceptions raised by the generator for bad input.

Every error carries a one-line message; the CLI prints ``btfgen: FILE: message``
and exits 1.  The runtime has its own exceptions in :mod:`btfgen.runtime`.
"""

from __future__ import annotations


class BtfgenError(Exception):
    """Base class for every error btfgen reports to its user."""

    #: The file the problem is in, set by the reader (e.g. the ``--base`` file);
    #: None means the file named on the command line.
    path: str | None = None


class BtfError(BtfgenError):
    """The BTF data is malformed (bad header, reference out of range, loop ...)."""


class ObjectError(BtfgenError):
    """The input file is not a usable BPF object (not ELF, not EM_BPF, no .BTF ...)."""
