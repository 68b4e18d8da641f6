"""Wheels of ``[tool.btfgen]`` projects are tagged for the machine that built them.

A generated module embeds a BPF object compiled for one architecture
(``-D__TARGET_ARCH_x86``: the ``PT_REGS_*`` and syscall-wrapper macros) and one
byte order (``-target bpf`` is the build machine's).  Such a wheel is not
``py3-none-any``: it is tagged ``py3-none-<platform>`` (``linux_x86_64``,
``linux_aarch64``, ...), still for any Python 3 and still installed as pure
Python; a project supporting several architectures builds one wheel on each
(``--plat-name`` names another platform).  The platform tag carries the byte
order too (``ppc64`` and ``ppc64le`` differ).
"""

from __future__ import annotations

import sysconfig
from typing import Any

__all__ = ["arch_tagged"]


def arch_tagged(base: type[Any]) -> type[Any]:
    """``base`` (a ``bdist_wheel`` command class) tagging ``py3-none-<platform>``."""
    if getattr(base, "_btfgen_arch_tagged", False):
        return base

    class bdist_wheel(base):  # type: ignore[misc]  # noqa: N801 - setuptools' name
        _btfgen_arch_tagged = True

        def finalize_options(self) -> None:
            # a platform named here is used even for a pure wheel (--plat-name still wins)
            if not getattr(self, "plat_name", None):
                self.plat_name = sysconfig.get_platform()
            super().finalize_options()

    bdist_wheel.__module__ = __name__
    return bdist_wheel
