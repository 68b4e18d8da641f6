"""setuptools integration: ``[[tool.btfgen.skeletons]]`` built by ``pip wheel``/``install``.

With btfgen in ``build-system.requires``, the
``setuptools.finalize_distribution_options`` entry point :func:`finalize_options`
adds the ``build_btfgen`` sub-command to ``build`` -- only for projects whose
``pyproject.toml`` has a ``[tool.btfgen]`` table.  The sub-command follows
setuptools' build sub-command protocol (``get_outputs``, ``get_output_mapping``,
``get_source_files``, ``editable_mode``): it compiles each ``source`` with clang
into ``build_temp``, generates each module, and writes it into ``build_lib`` --
or, for an editable install, next to the package's sources.  Modules are
written only after every entry compiled and generated.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from setuptools import Command
from setuptools.command.build import build as _setuptools_build
from setuptools.errors import CompileError as _SetuptoolsCompileError
from setuptools.errors import SetupError

from btfgen.errors import BtfgenError
from btfgen.gen.output import write_atomic
from btfgen.project.clang import compile_bpf, write_vmlinux_h
from btfgen.project.config import SkeletonSpec, has_skeletons, load_skeletons

__all__ = ["BuildBtfgen", "finalize_options", "COMMAND"]

COMMAND = "build_btfgen"

_log = logging.getLogger("btfgen")  # setuptools routes its commands' logging to the build log


def _root(dist: Any) -> str:
    return os.path.abspath(getattr(dist, "src_root", None) or os.curdir)


def generate_skeleton(spec: SkeletonSpec, root: str, temp: str,
                      vmlinux_dir: str | None = None) -> str:
    """Compile (when ``spec`` names a source) in ``temp`` and generate; returns the
    module text.  ``vmlinux_dir`` holds a ``vmlinux.h`` already written this build."""
    from btfgen.gen.module import generate_module

    if spec.source is not None:
        include: list[str] = []
        if spec.vmlinux_h:
            include.append(vmlinux_dir or
                           os.path.dirname(write_vmlinux_h(os.path.join(temp, "include"))))
        obj = os.path.join(temp, f"{spec.stem}.bpf.o")
        cmd = compile_bpf(os.path.join(root, spec.source), obj, cflags=spec.cflags,
                          include=include, strip=spec.strip)
        _log.info("btfgen: %s", " ".join(cmd))
    else:
        obj = os.path.join(root, spec.input_path)
    made = generate_module(obj, spec.gen_options(root))
    for line in made.messages:  # e.g. a ring buffer whose record type is unknown
        _log.warning("btfgen: %s: %s", spec.input_path, line)
    return made.text


def _write_module(path: str, text: str) -> None:
    """Write all or nothing, creating the package folder in the build if needed."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    write_atomic(path, text)


class BuildBtfgen(Command):  # type: ignore[misc]  # setuptools is untyped here
    """``build_btfgen``: compile BPF sources and generate the btfgen modules."""

    description = "compile BPF sources and generate [tool.btfgen] skeleton modules"
    user_options = [
        ("build-lib=", "d", "directory for the generated modules"),
        ("build-temp=", "t", "directory for compiled objects and vmlinux.h"),
    ]

    def initialize_options(self) -> None:
        self.build_lib: str | None = None
        self.build_temp: str | None = None
        self.editable_mode = False
        self.skeletons: list[SkeletonSpec] = []

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))
        self.set_undefined_options("build", ("build_temp", "build_temp"))
        try:
            self.skeletons = load_skeletons(_root(self.distribution))
        except BtfgenError as e:
            raise SetupError(f"btfgen: {e}") from None

    def _inplace_path(self, spec: SkeletonSpec) -> str:
        """Where an editable install puts ``spec``'s module (relative to the project)."""
        build_py = self.get_finalized_command("build_py")
        package_dir = build_py.get_package_dir(spec.package) if spec.package else ""
        path = os.path.join(package_dir, spec.module_path.rpartition("/")[2])
        # with a src_root, setuptools answers with an absolute path
        return os.path.relpath(path, _root(self.distribution)) if os.path.isabs(path) else path

    def _build_path(self, spec: SkeletonSpec) -> str:
        return os.path.join(str(self.build_lib), *spec.module_path.split("/"))

    def run(self) -> None:
        root = _root(self.distribution)
        temp = os.path.join(str(self.build_temp), "btfgen")
        os.makedirs(temp, exist_ok=True)
        texts = []
        vmlinux_dir = None
        for spec in self.skeletons:
            _log.info("btfgen: %s -> %s", spec.input_path, spec.module)
            try:
                if spec.vmlinux_h and vmlinux_dir is None:
                    vmlinux_dir = os.path.dirname(write_vmlinux_h(os.path.join(temp, "include")))
                texts.append(generate_skeleton(spec, root, temp, vmlinux_dir))
            except BtfgenError as e:
                raise _SetuptoolsCompileError(f"btfgen: {spec.input_path}: {e}") from None
        for spec, text in zip(self.skeletons, texts, strict=True):
            dest = (os.path.join(root, self._inplace_path(spec)) if self.editable_mode
                    else self._build_path(spec))
            _write_module(dest, text)

    def get_source_files(self) -> list[str]:
        """The BPF sources and objects, and the headers next to each source (for sdists)."""
        root = _root(self.distribution)
        files: list[str] = []
        for spec in self.skeletons:
            files.append(spec.input_path)
            if spec.header is not None:
                files.append(spec.header)
            if spec.source is not None:
                folder = os.path.dirname(spec.source)
                files += sorted(os.path.join(folder, n)
                                for n in os.listdir(os.path.join(root, folder) or ".")
                                if n.endswith(".h"))
        return list(dict.fromkeys(f.replace(os.sep, "/") for f in files))

    def get_outputs(self) -> list[str]:
        """``{build_lib}/pkg/mod.py`` for every module."""
        return [self._build_path(spec) for spec in self.skeletons]

    def get_output_mapping(self) -> dict[str, str]:
        """Editable installs: each module's build path -> its in-place file."""
        if not self.editable_mode:
            return {}
        return {self._build_path(s): self._inplace_path(s) for s in self.skeletons}


def _build_with_btfgen(base: type[Any]) -> type[Any]:
    """``base`` (the project's ``build`` command) with ``build_btfgen`` after ``build_py``."""
    subs = list(base.sub_commands)
    at = next((i + 1 for i, (name, _) in enumerate(subs) if name == "build_py"), 0)
    subs.insert(at, (COMMAND, None))
    return type("build", (base,), {"sub_commands": subs, "__module__": __name__})


def finalize_options(dist: Any) -> None:
    """The ``setuptools.finalize_distribution_options`` hook: add ``build_btfgen``
    to ``build`` when the project configures ``[tool.btfgen]``; otherwise do nothing."""
    if not has_skeletons(_root(dist)):
        return
    dist.cmdclass.setdefault(COMMAND, BuildBtfgen)
    base = dist.cmdclass.get("build", _setuptools_build)
    if any(name == COMMAND for name, _ in base.sub_commands):
        return
    dist.cmdclass["build"] = _build_with_btfgen(base)
