""":class:`GenOptions`: everything besides the object that decides a module's text.

One object for every way in: ``btfgen gen``/``check`` build it from their
arguments, the setuptools step from a ``[[tool.btfgen.skeletons]]`` entry, and
library callers pass it to :func:`btfgen.generate_module`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GenOptions:
    """Options of one generation; the defaults are ``btfgen gen FILE``'s."""

    #: Module stem, used for the skeleton class name (default: the object's stem).
    name: str | None = None
    #: Extra C types to emit (``--type``), e.g. ``"struct sock"``.
    types: tuple[str, ...] = ()
    #: Base BTF for split BTF input (``--base``).
    base: str | None = None
    #: Record types of perf/ring maps (``--event MAP=CTYPE``): map name -> C type.
    events: Mapping[str, str] = field(default_factory=dict)
    #: C header declaring record types a stripped object's BTF lacks (``--header``).
    header: str | None = None
    #: Embed the object with its DWARF (``--keep-debug``); by default the module
    #: embeds it without (DWARF is read for record types first).
    keep_debug: bool = False

    def command_line(self, path: str, output: str) -> str:
        """The ``btfgen gen`` command that writes ``output`` with these options."""
        args = [path, "-o", output]
        args += ["--name", self.name] if self.name else []
        args += [a for t in self.types for a in ("--type", t)]
        args += ["--base", self.base] if self.base else []
        args += [a for m, c in self.events.items() for a in ("--event", f"{m}={c}")]
        args += ["--header", self.header] if self.header else []
        args += ["--keep-debug"] if self.keep_debug else []
        return "btfgen gen " + shlex.join(args)
