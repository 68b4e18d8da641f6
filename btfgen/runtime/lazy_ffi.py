"""A cffi ``FFI`` that parses its declarations on first use, not at import.

Creating a ``cffi.FFI`` imports pycparser (~25 ms) and every ``cdef`` parses C
(tens of ms for a module with many types).  Generated modules and the runtime
declare types at import but most programs touch few of them, so
:class:`LazyFFI` records ``cdef`` calls and replays them into a real ``FFI``
the first time any other attribute is used.  After that, the real FFI's
attributes are copied onto the proxy, so calls cost what they cost on the FFI
itself (properties such as ``errno`` keep going through to the real one).
"""

from __future__ import annotations

from typing import Any

__all__ = ["LazyFFI"]


class LazyFFI:
    """Stands in for ``cffi.FFI()``: ``cdef`` is deferred, everything else is cffi's."""

    def __init__(self) -> None:
        self.__dict__["_LazyFFI__pending"] = []
        self.__dict__["_LazyFFI__real"] = None

    def cdef(self, csource: str, override: bool = False, packed: bool = False,
             pack: int | None = None) -> None:
        """Declare ``csource`` (parsed on first use of the FFI, or now if already used)."""
        real = self.__dict__["_LazyFFI__real"]
        if real is not None:
            real.cdef(csource, override=override, packed=packed, pack=pack)
        else:
            self.__dict__["_LazyFFI__pending"].append((csource, override, packed, pack))

    def real(self) -> Any:
        """The ``cffi.FFI``, created and declared now if it was not yet."""
        real = self.__dict__["_LazyFFI__real"]
        if real is None:
            from cffi import FFI

            real = FFI()
            for csource, override, packed, pack in self.__dict__["_LazyFFI__pending"]:
                real.cdef(csource, override=override, packed=packed, pack=pack)
            self.__dict__["_LazyFFI__pending"] = []
            self.__dict__["_LazyFFI__real"] = real
            cls = type(real)
            for name in dir(real):
                if name.startswith("__") or name == "cdef":
                    continue
                if isinstance(getattr(cls, name, None), property):
                    continue  # dynamic (errno): keep going through __getattr__
                try:
                    self.__dict__[name] = getattr(real, name)
                except AttributeError:
                    continue
        return real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.real(), name, value)

    def __repr__(self) -> str:
        state = "parsed" if self.__dict__["_LazyFFI__real"] is not None else "not parsed yet"
        return f"<LazyFFI {state}>"
