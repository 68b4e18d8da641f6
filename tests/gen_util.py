"""Helpers for the ``btfgen gen`` tests: generate, import, type-check, lint."""

from __future__ import annotations

import importlib.util
import itertools
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from btfgen.gen.module import generate_module

ROOT = Path(__file__).resolve().parent.parent
_counter = itertools.count()


def generate(obj: Path | str, out: Path, **options: Any) -> ModuleType:
    """Generate the module for ``obj`` into ``out`` and import it."""
    out.write_text(generate_module(str(obj), **options))
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


def mypy_strict(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on generated modules (btfgen's own code is checked elsewhere)."""
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-incremental",
         "--cache-dir=/dev/null", *map(str, paths)],
        capture_output=True, text=True, cwd=ROOT)


def ruff(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    """``ruff check`` with the project's rules (E, F, W, I, B, UP; 100 columns)."""
    return subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config",
         str(ROOT / "pyproject.toml"), *map(str, paths)],
        capture_output=True, text=True, cwd=ROOT)
