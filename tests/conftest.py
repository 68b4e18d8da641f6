"""Shared fixtures: the libbpf-tools corpus, compiling BPF C (helpers: ``tests/helpers``)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers.build import CompileFn, compile_bpf
from tests.helpers.corpus import extract_corpus
from tests.helpers.event_progs import VARIANTS, build_variant

# CI runs the same examples every time (a landing must not hang on luck); local runs
# explore new ones and keep failures in .hypothesis/ to replay.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# A shell starts a background job (`make test &`, some CI runners) with SIGINT
# ignored, and an ignored signal stays ignored across exec: Python then installs
# no KeyboardInterrupt handler, and the Ctrl-C tests' interpreters (fault
# harnesses, example tracers) never see their SIGINT.  Give it back its default
# handler; exec resets a handled signal to the default for every child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

@pytest.fixture(scope="session")
def corpus_objects(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The 61 BPF objects embedded in the libbpf-tools binaries, extracted now."""
    objs = extract_corpus(tmp_path_factory.mktemp("corpus"))
    assert len(objs) >= 61, f"expected 61 libbpf-tools objects, found {len(objs)}"
    return objs


@pytest.fixture(scope="session")
def event_variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every variant of tests/helpers/event_progs.py, compiled once (tests only read them)."""
    d = tmp_path_factory.mktemp("events")
    return {name: build_variant(name, d) for name in VARIANTS}


@pytest.fixture
def bpf_compile(tmp_path: Path) -> CompileFn:
    """``bpf_compile(src, name="prog", clang="clang", target="bpf", cflags=())`` -> .o path."""

    def _compile(src: str, name: str = "prog", **kw: object) -> Path:
        return compile_bpf(src, tmp_path / f"{name}.bpf.o", **kw)  # type: ignore[arg-type]

    return _compile
