"""Builds btfgen's optional compiled parts; metadata is in pyproject.toml.

* ``btfgen.runtime._drain`` (cffi API mode): drains perf rings into one buffer;
* ``btfgen.runtime._records`` (C API): builds many record objects in one call;
* ``btfgen._btf_decode`` (C API): decodes valid BTF type sections (vmlinux).

All are optional: without a compiler or Python headers the install goes on
and btfgen uses its pure-Python paths.
"""

from setuptools import Extension, setup

setup(
    cffi_modules=["btfgen/runtime/_drain_build.py:ffibuilder"],
    ext_modules=[
        Extension("btfgen.runtime._records", ["btfgen/runtime/_records.c"],
                  depends=["btfgen/runtime/_perf_ring.h",
                                                          "btfgen/runtime/_bpf_ringbuf.h"], optional=True),
        Extension("btfgen._btf_decode", ["btfgen/_btf_decode.c"], optional=True),
    ],
)
