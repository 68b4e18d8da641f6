"""``btfgen gen`` on all 61 libbpf-tools objects: generate, import, exact layouts."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.gen import generate
from tests.helpers.lint import mypy_strict, ruff

pytestmark = pytest.mark.slow

#: A sample for mypy: simple and busy modules (maps, globals, unions, many types).
MYPY_SAMPLE = ("biotop", "execsnoop", "ksnoop", "klockstat", "capable", "tcpconnect",
               "runqlat", "offcputime")


@pytest.fixture(scope="module")
def corpus_modules(corpus_objects: list[Path], tmp_path_factory: pytest.TempPathFactory
                   ) -> dict[str, tuple[Path, ModuleType]]:
    out = tmp_path_factory.mktemp("corpus_gen")
    mods = {}
    for obj in corpus_objects:
        stem = obj.name.removesuffix(".bpf.o").replace("-", "_")
        path = out / f"{stem}_skel.py"
        mods[stem] = (path, generate(obj, path))
    return mods


def test_every_object_generates_and_imports(corpus_modules: dict[str, tuple[Path, ModuleType]]
                                            ) -> None:
    assert len(corpus_modules) >= 61
    records = 0
    for stem, (_, mod) in corpus_modules.items():
        assert "ffi" in mod.__all__ and "TYPES" in mod.__all__, stem
        for spelling, cls in mod.TYPES.items():
            if not hasattr(cls, "SIZE"):
                continue
            records += 1
            assert mod.ffi.sizeof(spelling) == cls.SIZE, (stem, spelling)
            zero = cls.from_bytes(bytes(cls.SIZE))
            assert zero == cls() and zero.to_bytes() == bytes(cls.SIZE), (stem, spelling)
            data = os.urandom(cls.SIZE)
            value = cls.from_bytes(data)
            assert cls.from_bytes(value.to_bytes()) == value, (stem, spelling)
            assert len(value.to_bytes()) == cls.SIZE
    assert records >= 70  # the objects' map keys/values and globals


def test_event_records_typed_where_found(corpus_modules: dict[str, tuple[Path, ModuleType]]
                                         ) -> None:
    # execsnoop's perf map record is found from the bytecode (issue 5), so the
    # module has its struct; it decodes as the kernel side lays it out.
    _, mod = corpus_modules["execsnoop"]
    assert "struct event" in mod.TYPES
    ev = mod.TYPES["struct event"]
    assert mod.ffi.sizeof("struct event") == ev.SIZE


def test_mypy_strict_on_a_sample(corpus_modules: dict[str, tuple[Path, ModuleType]]) -> None:
    paths = [corpus_modules[s][0] for s in MYPY_SAMPLE if s in corpus_modules]
    assert len(paths) == len(MYPY_SAMPLE)
    r = mypy_strict(paths)
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_on_all(corpus_modules: dict[str, tuple[Path, ModuleType]]) -> None:
    r = ruff([p for p, _ in corpus_modules.values()])
    assert r.returncode == 0, r.stdout + r.stderr
