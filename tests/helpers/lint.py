"""The one lint helper for generated modules and examples: ``mypy --strict`` and
``ruff`` with the project's rules, found next to the running interpreter or on PATH."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers.build import ROOT


def tool(name: str) -> str:
    """The ``name`` executable of the interpreter's environment, else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise AssertionError(f"{name} not found next to {sys.executable} nor on PATH"
                             " (pip install -e '.[test]')")
    return found


def mypy_strict(paths: list[Path] | list[str], *, follow_imports: str = "silent",
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``mypy --strict`` on ``paths``.  By default modules they import are used but
    not reported on (btfgen's own code is checked by ``make lint``); with
    ``follow_imports="normal"`` errors in them count too (an example and the
    generated module it imports)."""
    return subprocess.run(
        [tool("mypy"), "--strict", f"--follow-imports={follow_imports}", "--no-incremental",
         "--cache-dir=/dev/null", *map(str, paths)],
        capture_output=True, text=True, cwd=ROOT, env=env)


def ruff(paths: list[Path] | list[str]) -> subprocess.CompletedProcess[str]:
    """``ruff check`` with the project's rules (E, F, W, I, B, UP; 100 columns)."""
    return subprocess.run(
        [tool("ruff"), "check", "--no-cache", "--config", str(ROOT / "pyproject.toml"),
         *map(str, paths)],
        capture_output=True, text=True, cwd=ROOT)
