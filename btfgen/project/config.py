"""``[tool.btfgen]`` in a project's ``pyproject.toml``: the skeletons to build.

::

    [[tool.btfgen.skeletons]]
    source = "bpf/probe.bpf.c"        # or: object = "bpf/probe.bpf.o"
    module = "probe_tool.probe_skel"  # dotted path of the generated module
    # cflags = ["-DDEBUG"], vmlinux_h = true, strip = true, types = ["struct sock"],
    # name = "probe", events = { probe_events = "struct probe_event" },
    # header = "bpf/probe.h"

Every problem is a :class:`ConfigError` whose message names the entry and says
how to fix it.  Paths are relative to the directory of ``pyproject.toml``.
"""

from __future__ import annotations

import keyword
import os
import sys
from dataclasses import dataclass, field
from typing import Any

from btfgen.errors import BtfgenError
from btfgen.gen.options import GenOptions

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["ConfigError", "SkeletonSpec", "load_skeletons", "has_skeletons", "PYPROJECT"]

PYPROJECT = "pyproject.toml"

_KEYS = ("source", "object", "module", "cflags", "vmlinux_h", "strip", "types", "name",
         "events", "header")


class ConfigError(BtfgenError):
    """``[tool.btfgen]`` is malformed; the message says what to change."""


@dataclass(frozen=True)
class SkeletonSpec:
    """One ``[[tool.btfgen.skeletons]]`` entry, validated."""

    module: str
    source: str | None = None
    object: str | None = None
    cflags: tuple[str, ...] = ()
    vmlinux_h: bool = False
    #: Embed the compiled object without its DWARF (record types are read from it
    #: first); DWARF is most of a ``-g`` object's size.
    strip: bool = True
    types: tuple[str, ...] = ()
    name: str | None = None
    events: dict[str, str] = field(default_factory=dict)
    header: str | None = None

    def gen_options(self, root: str) -> GenOptions:
        """The generator's options for this entry (``header`` relative to ``root``)."""
        return GenOptions(name=self.name or self.stem, types=self.types,
                          events=dict(self.events),
                          header=os.path.join(root, self.header) if self.header else None,
                          keep_debug=not self.strip)

    @property
    def module_path(self) -> str:
        """``pkg.sub.mod`` -> ``pkg/sub/mod.py`` (``/``-separated)."""
        return self.module.replace(".", "/") + ".py"

    @property
    def package(self) -> str:
        """``pkg.sub.mod`` -> ``pkg.sub``; ``""`` for a top-level module."""
        return self.module.rpartition(".")[0]

    @property
    def stem(self) -> str:
        """The object's stem: ``bpf/probe.bpf.c`` -> ``probe``."""
        path = self.source or self.object or ""
        base = os.path.basename(path)
        for suffix in (".bpf.c", ".bpf.o", ".c", ".o"):
            if base.endswith(suffix) and len(base) > len(suffix):
                return base[: -len(suffix)]
        return base

    @property
    def input_path(self) -> str:
        """``source`` or ``object``, whichever is set."""
        return self.source or self.object or ""


def read_pyproject(root: str) -> dict[str, Any] | None:
    """The parsed ``pyproject.toml`` in ``root``, or None when there is none."""
    path = os.path.join(root, PYPROJECT)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{PYPROJECT}: {e}") from None


def has_skeletons(root: str) -> bool:
    """Whether ``root/pyproject.toml`` configures ``[tool.btfgen]`` at all (cheap,
    never raises: a broken file is reported when the build step runs)."""
    try:
        data = read_pyproject(root)
    except (ConfigError, OSError):
        return False
    tool = data.get("tool") if data else None
    return isinstance(tool, dict) and "btfgen" in tool


def entry_label(i: int) -> str:
    """How messages name entry number ``i`` (1-based) of ``[[tool.btfgen.skeletons]]``."""
    return f"{PYPROJECT}: [[tool.btfgen.skeletons]] #{i}"


def _str_list(value: object, where: str, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings,"
                          f' e.g. {key} = ["..."]')
    return tuple(value)


def _relative_path(value: object, where: str, key: str, root: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f'{where}: \'{key}\' must be a path string, e.g. {key} = "bpf/x.bpf.c"')
    if os.path.isabs(value):
        raise ConfigError(f"{where}: '{key}' = {value!r} is absolute -- use a path relative"
                          f" to {PYPROJECT} so sdists build elsewhere")
    real_root = os.path.realpath(root)
    if os.path.normpath(value).split(os.sep)[0] == os.pardir or \
            os.path.commonpath([real_root, os.path.realpath(os.path.join(root, value))]) \
            != real_root:
        raise ConfigError(f"{where}: '{key}' = {value!r} leads out of the project -- keep it"
                          f" inside the folder of {PYPROJECT} so sdists carry it")
    if not os.path.isfile(os.path.join(root, value)):
        raise ConfigError(f"{where}: '{key}' = {value!r}: no such file (paths are relative"
                          f" to the folder of {PYPROJECT})")
    return value


def _module(value: object, where: str) -> str:
    example = 'module = "my_package.probe_skel"'
    if not isinstance(value, str):
        raise ConfigError(f"{where}: 'module' is missing -- add {example}")
    parts = value.split(".")
    if not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        raise ConfigError(f"{where}: module = {value!r} is not a dotted Python name"
                          f" -- e.g. {example}")
    return value


def _events(value: object, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ConfigError(f'{where}: \'events\' must map map names to C types,'
                          f' e.g. events = {{ events = "struct event" }}')
    return dict(value)


def parse_skeleton(entry: object, i: int, root: str) -> SkeletonSpec:
    """Validate entry number ``i`` (1-based) of ``[[tool.btfgen.skeletons]]``."""
    where = entry_label(i)
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a table -- write it as [[tool.btfgen.skeletons]]")
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} -- known keys: {', '.join(_KEYS)}")
    has_source, has_object = "source" in entry, "object" in entry
    if has_source == has_object:
        raise ConfigError(f'{where}: give exactly one of source = "bpf/x.bpf.c" (compiled with'
                          ' clang) or object = "bpf/x.bpf.o"')
    source = _relative_path(entry["source"], where, "source", root) if has_source else None
    obj = _relative_path(entry["object"], where, "object", root) if has_object else None
    cflags = _str_list(entry.get("cflags", []), where, "cflags")
    flags = {k: entry.get(k, d) for k, d in (("vmlinux_h", False), ("strip", True))}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: '{key}' must be true or false")
    if obj is not None and (cflags or "vmlinux_h" in entry or "strip" in entry):
        raise ConfigError(f"{where}: 'cflags', 'vmlinux_h' and 'strip' apply to 'source'"
                          " only -- remove them or use source =")
    header = entry.get("header")
    if header is not None:
        header = _relative_path(header, where, "header", root)
    name = entry.get("name")
    if name is not None and (not isinstance(name, str) or not name.isidentifier()):
        raise ConfigError(f'{where}: \'name\' must be an identifier, e.g. name = "probe"')
    return SkeletonSpec(
        module=_module(entry.get("module"), where),
        source=source,
        object=obj,
        cflags=cflags,
        vmlinux_h=flags["vmlinux_h"],
        strip=flags["strip"],
        types=_str_list(entry.get("types", []), where, "types"),
        name=name,
        events=_events(entry.get("events", {}), where),
        header=header,
    )


def load_skeletons(root: str) -> list[SkeletonSpec]:
    """The validated skeletons of the project in ``root`` (empty when unconfigured)."""
    data = read_pyproject(root) or {}
    tool = data.get("tool", {}).get("btfgen")
    if tool is None:
        return []
    if not isinstance(tool, dict):
        raise ConfigError(f"{PYPROJECT}: [tool.btfgen] must be a table")
    unknown = sorted(set(tool) - {"skeletons"})
    if unknown:
        raise ConfigError(f"{PYPROJECT}: [tool.btfgen]: unknown key {unknown[0]!r}"
                          " -- list objects as [[tool.btfgen.skeletons]] entries")
    entries = tool.get("skeletons", [])
    if not isinstance(entries, list):
        raise ConfigError(f"{PYPROJECT}: tool.btfgen.skeletons must be an array of tables"
                          " -- write each entry as [[tool.btfgen.skeletons]]")
    specs = [parse_skeleton(e, i, root) for i, e in enumerate(entries, 1)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs, 1):
        if spec.module in seen:
            raise ConfigError(f"{entry_label(i)}: module {spec.module!r} is also generated by entry"
                              f" #{seen[spec.module]} -- give each entry its own module")
        seen[spec.module] = i
    return specs
