"""Exceptions raised by the generator for bad input.

Every error carries a one-line message; the CLI prints ``btfgen: FILE: message``
and exits 1.  The runtime has its own exceptions in :mod:`btfgen.runtime`.
Names in messages come from the file and are untrusted: :func:`show` and
:func:`quote_name` are the one way to put them in a message.
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


def show(name: str, quote: str = "") -> str:
    """``name`` with non-printable characters escaped; bytes that were not UTF-8
    (lone surrogates from surrogateescape) read ``\\xNN``.  With ``quote``, that
    character and the backslash are escaped too."""
    out = []
    for ch in name:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable() and (not quote or ch not in quote + "\\"):
            out.append(ch)
        else:
            out.append(repr(ch)[1:-1] if ch != "'" else "\\'")
    return "".join(out)


def quote_name(name: str) -> str:
    """A BTF name quoted for a one-line message: ``'name'``, escaped by :func:`show`."""
    return "'" + show(name, quote="'") + "'"
