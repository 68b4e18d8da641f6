"""btfgen: typed Python from the BTF of compiled eBPF objects.

The library API (imported on first use, so that ``import btfgen.runtime`` from a
generated module stays cheap)::

    from btfgen import GenOptions, generate_module, check_module
    made = generate_module("probe.bpf.o", GenOptions(types=("struct sock",)))
    made.text, made.messages

Packages, each importing only those listed before it (``tests/test_imports.py``
checks it): ``errors``/``uapi``/``version``; ``btf_*`` (the BTF model);
``elf`` (the object); ``discovery`` (record types of perf/ring maps); ``gen``
(selected types rendered into a module); ``dump``, ``project``, ``cli`` (front
ends).  ``runtime`` is what generated modules import; it imports none of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from btfgen.version import __version__

if TYPE_CHECKING:
    from btfgen.elf.model import BpfObject
    from btfgen.elf.reader import read_input
    from btfgen.errors import BtfError, BtfgenError, ObjectError
    from btfgen.gen.check import CheckResult, StaleModuleError, check_module
    from btfgen.gen.model import GenerateError
    from btfgen.gen.module import GeneratedModule, generate_module, generate_to_file
    from btfgen.gen.options import GenOptions

__all__ = [
    "__version__", "GenOptions", "GeneratedModule", "generate_module", "generate_to_file",
    "check_module", "CheckResult", "StaleModuleError", "read_input", "BpfObject",
    "BtfgenError", "BtfError", "ObjectError", "GenerateError",
]

#: API name -> the module that defines it.
_API = {
    "GenOptions": "btfgen.gen.options",
    "GeneratedModule": "btfgen.gen.module",
    "generate_module": "btfgen.gen.module",
    "generate_to_file": "btfgen.gen.module",
    "check_module": "btfgen.gen.check",
    "CheckResult": "btfgen.gen.check",
    "StaleModuleError": "btfgen.gen.check",
    "read_input": "btfgen.elf.reader",
    "BpfObject": "btfgen.elf.model",
    "BtfgenError": "btfgen.errors",
    "BtfError": "btfgen.errors",
    "ObjectError": "btfgen.errors",
    "GenerateError": "btfgen.gen.model",
}


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'btfgen' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
