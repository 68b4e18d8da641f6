"""Generating a module in a test and importing it."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from btfgen.gen.module import generate_module
from btfgen.gen.options import GenOptions

_counter = itertools.count()


def generate(obj: Path | str, out: Path, **options: Any) -> ModuleType:
    """Generate the module for ``obj`` into ``out`` and import it."""
    if "types" in options:
        options["types"] = tuple(options["types"])
    out.write_text(generate_module(str(obj), GenOptions(**options)).text)
    return load(out)


def load(path: Path) -> ModuleType:
    """Import a generated module from ``path`` under a fresh name."""
    name = f"_btfgen_test_{path.stem}_{next(_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod
