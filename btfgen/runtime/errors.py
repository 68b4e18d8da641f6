"""Exceptions raised by the btfgen runtime.

:class:`BpfError` is an :class:`OSError`: ``errno`` is libbpf's error code and
``log`` holds the lines libbpf printed during the failing call (the verifier log
when a program fails to load).
"""

from __future__ import annotations

import errno as errno_mod
import os
import warnings


class RuntimeBpfError(Exception):
    """Base class of every error the runtime raises on its own."""


class LibbpfMissingError(RuntimeBpfError, ImportError):
    """libbpf.so.1 is missing or older than the runtime needs."""


class BpfError(RuntimeBpfError, OSError):
    """A libbpf call failed.

    ``errno`` is the error number, ``strerror`` the message, ``log`` the lines
    libbpf printed during the call, ``verifier_log`` the kernel's log when a
    program failed to load (its last lines are in the message too).
    """

    def __init__(self, what: str, err: int, log: list[str] | None = None) -> None:
        err = abs(err)
        self.log: list[str] = list(log or [])
        #: The kernel's verifier log when a program failed to load (else empty).
        self.verifier_log: list[str] = []
        hint = _hint(err)
        text = f"{what}: {os.strerror(err)}"
        if hint:
            text += f" ({hint})"
        if self.log:
            text += "\nlibbpf log:\n" + "\n".join(self.log)
        OSError.__init__(self, err, text)

    def __str__(self) -> str:
        return str(self.strerror)


class NotSupportedError(BpfError):
    """This kernel cannot do what was asked (no kprobes, no BPF trampolines...);
    the message is one sentence saying what is missing.  ``errno`` is EOPNOTSUPP."""

    def __init__(self, message: str) -> None:
        self.log = []
        self.verifier_log = []
        OSError.__init__(self, errno_mod.EOPNOTSUPP, message)


class BpfPermissionError(BpfError):
    """The kernel refused BPF to this process (not root, or BPF disabled)."""


class MapKeyError(KeyError):
    """A key is not in the map (``lookup``/``delete``/``[]``)."""


def _hint(err: int) -> str:
    if err in (errno_mod.EPERM, errno_mod.EACCES) and os.geteuid() != 0:
        return ("loading BPF programs needs root or CAP_BPF + CAP_PERFMON; this process "
                f"runs as uid {os.geteuid()}")
    if err == errno_mod.EPERM:
        return ("the kernel refused it although this process is root: a lockdown, LSM or "
                "seccomp policy, or a kernel that does not allow this program or attach type")
    if err == errno_mod.ENOSYS:
        return "this kernel has no BPF support (CONFIG_BPF_SYSCALL)"
    return ""


def error_class(err: int) -> type[BpfError]:
    """The exception class for libbpf error ``err`` (negative or positive)."""
    err = abs(err)
    if err == errno_mod.EPERM or (err == errno_mod.EACCES and os.geteuid() != 0):
        return BpfPermissionError
    return BpfError


def _add_note(exc: BaseException, note: str) -> None:
    """``exc.add_note(note)`` where Python has it (3.11+).

    Python 3.10 has no ``add_note`` and its tracebacks ignore ``__notes__``: the note
    is kept there all the same (for code that reads it) and is said on stderr as a
    :class:`RuntimeWarning`."""
    add = getattr(exc, "add_note", None)
    if add is not None:
        add(note)
        return
    exc.__notes__ = [*getattr(exc, "__notes__", ()), note]
    warnings.warn(f"{type(exc).__name__}: {note}", RuntimeWarning, stacklevel=3)
