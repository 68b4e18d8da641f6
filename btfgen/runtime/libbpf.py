"""The way down: the runtime's own cffi ``ffi`` and loaded ``lib`` for libbpf.

Anything libbpf can do is reachable from a skeleton without private attributes
or a second FFI: ``prog.handle``, ``map.handle``, ``skel.handle`` and
``link.handle`` are ``struct bpf_program *``/``bpf_map *``/``bpf_object *``/
``bpf_link *`` in this ``ffi``; ``prog.fd``, ``map.fd``, ``link.fd`` are plain fds::

    from btfgen.runtime.libbpf import ffi, lib
    ffi.cdef("int bpf_program__set_flags(struct bpf_program *prog, unsigned int flags);")
    lib.bpf_program__set_flags(skel.progs.handle.handle, 1)

Declare what the runtime does not (``ffi.cdef``); the runtime's declarations
are in :mod:`btfgen.runtime._libbpf` and its modules.  Pointers are valid while
their skeleton is: after ``destroy()`` the ``handle`` properties raise.
"""

from __future__ import annotations

from typing import Any

from btfgen.runtime._libbpf import ffi, version

__all__ = ["ffi", "lib", "version"]  # noqa: F822 - lib comes from __getattr__


def __getattr__(name: str) -> Any:
    if name == "lib":  # loaded on first use, like the runtime's own
        # every declaration of the runtime's modules, so their functions are callable
        import btfgen.runtime.bpfobj  # noqa: F401
        import btfgen.runtime.perf_event  # noqa: F401
        import btfgen.runtime.tc  # noqa: F401
        from btfgen.runtime._libbpf import lib
        return lib()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
