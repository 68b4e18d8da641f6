"""Writing generated files: all or nothing."""

from __future__ import annotations

import os
import tempfile

from btfgen.errors import BtfgenError


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so a failure
    never leaves a half-written file behind."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".btfgen-", suffix=".tmp", dir=directory)
    except OSError as e:
        raise BtfgenError(f"cannot write {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
