"""Writing generated files: all or nothing.

The output is a file the user named: a symlink is written through (its target
replaced atomically), a device node or FIFO is written in place (``-o
/dev/null``), an existing file keeps its mode, and a directory is refused.
"""

from __future__ import annotations

import os
import stat
import tempfile

from btfgen.errors import BtfgenError


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so a failure
    never leaves a half-written file behind (in place for devices and FIFOs)."""
    target = os.path.realpath(path)  # through symlinks, to the file they name
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _error(path, f"cannot write: {e.strerror}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _error(path, "is a directory: name the module file to write, e.g. "
                     f"{os.path.join(path, 'prog_skel.py')}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_in_place(path, target, text)
        return
    directory = os.path.dirname(target)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".btfgen-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise _error(path, f"cannot write: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        # mkstemp creates 0600: keep the mode of the file replaced, else give the
        # one a plain open() would.
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_in_place(path: str, target: str, text: str) -> None:
    try:
        with open(target, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except OSError as e:
        raise _error(path, f"cannot write: {e.strerror}") from None


def _error(path: str, message: str) -> BtfgenError:
    e = BtfgenError(message)
    e.path = path
    return e


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
