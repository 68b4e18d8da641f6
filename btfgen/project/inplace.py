"""``btfgen build``: recompile a project's BPF sources and regenerate its modules in place.

The editable-install dev loop: after a change to a BPF source, ``btfgen build`` in the
folder of the project's ``pyproject.toml`` does what ``pip install -e .`` did for
``[tool.btfgen]`` -- the same ``build_btfgen`` step in editable mode, so each module
lands where the editable install imports it from (``package-dir`` and src layouts
included) -- without reinstalling.  Nothing is written unless every entry compiled
and generated.
"""

from __future__ import annotations

import os
import tempfile

from btfgen.errors import BtfgenError
from btfgen.project.config import PYPROJECT, ConfigError, load_skeletons

__all__ = ["BuildError", "build_in_place"]


class BuildError(BtfgenError):
    """An entry failed to compile or generate; the message holds the tool's output."""


def build_in_place(root: str = ".") -> list[tuple[str, str]]:
    """Build every ``[[tool.btfgen.skeletons]]`` entry of the project in ``root`` in place;
    returns ``(input, written module path)`` pairs, paths relative to ``root``."""
    if not os.path.isfile(os.path.join(root, PYPROJECT)):
        raise _config_error(root, "not found -- run btfgen build in the folder of your"
                            f" project's {PYPROJECT}")
    try:
        specs = load_skeletons(root)
    except ConfigError as e:
        raise _config_error(root, str(e).removeprefix(f"{PYPROJECT}: ")) from None
    if not specs:
        raise _config_error(root, "no [[tool.btfgen.skeletons]] entries -- nothing to build")
    try:
        from setuptools.dist import Distribution
    except ImportError:
        raise BtfgenError("btfgen build needs setuptools to find where the project's packages"
                          " live -- pip install setuptools") from None
    from btfgen.project.plugin import BuildBtfgen

    here = os.getcwd()
    os.chdir(root)  # setuptools reads the project's configuration from the current folder
    try:
        dist = Distribution({"script_name": "btfgen build"})
        dist.parse_config_files()
        cmd = BuildBtfgen(dist)
        with tempfile.TemporaryDirectory(prefix="btfgen-build-") as temp:
            cmd.build_temp = temp
            cmd.build_lib = os.path.join(temp, "lib")
            cmd.editable_mode = True
            cmd.ensure_finalized()
            written = [(spec.input_path, cmd._inplace_path(spec)) for spec in cmd.skeletons]
            try:
                cmd.run()
            except Exception as e:  # setuptools' CompileError around btfgen's own
                raise _unwrap(e) from None
    finally:
        os.chdir(here)
    return written


def _config_error(root: str, message: str) -> ConfigError:
    error = ConfigError(message)
    error.path = os.path.join(os.path.abspath(root), PYPROJECT)
    return error


def _unwrap(error: Exception) -> Exception:
    """btfgen's own error inside the setuptools one (``btfgen: INPUT: message``)."""
    inner = error.__context__
    if not isinstance(inner, BtfgenError):
        return error
    text, message = str(error), str(inner)
    prefix, suffix = "btfgen: ", f": {message}"
    if text.startswith(prefix) and text.endswith(suffix):
        failed = BuildError(message)
        failed.path = text[len(prefix):-len(suffix)]
        return failed
    return inner
