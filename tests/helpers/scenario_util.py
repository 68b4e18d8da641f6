"""Helpers for the fault-scenario harnesses that run in their own interpreter
(test_runtime_faults.py, test_reader_faults.py): load the generated module,
load and attach a skeleton or report that the kernel refuses BPF."""

from __future__ import annotations

import errno
import importlib.util
import json
import sys
from types import ModuleType
from typing import Any


def load_module(path: str, name: str) -> ModuleType:
    """Import the generated module at ``path`` as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_and_attach(skel: Any) -> Any:
    """``skel.load()`` and ``skel.attach()``; when the kernel refuses BPF, print
    the scenario's skip line (JSON) and exit."""
    from btfgen.runtime import BpfError, BpfPermissionError

    try:
        skel.load()
    except BpfError as e:
        if isinstance(e, BpfPermissionError) or e.errno == errno.ENOSYS:
            print(json.dumps({"skip": str(e).splitlines()[0]}))
            sys.exit(0)
        raise
    skel.attach()
    return skel
