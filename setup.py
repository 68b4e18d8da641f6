"""Builds the optional compiled perf ring drain (cffi API mode); metadata is in pyproject.toml."""

from setuptools import setup

setup(cffi_modules=["btfgen/runtime/_drain_build.py:ffibuilder"])
