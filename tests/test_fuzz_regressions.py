"""Replay every input the fuzzers ever found (tests/regressions/, see its README):
in the bounded worker (all stages, generated module imported and exercised)
and through the CLI (exit 0, or exit 1 with one clean line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_btfgen
from fuzz.harness import BAD, Worker

REGRESSIONS = Path(__file__).with_name("regressions")
FILES = sorted(p for p in REGRESSIONS.iterdir() if p.suffix != ".md")

#: Findings whose owner has not fixed them yet: file -> reason (see the README).
OPEN: dict[str, str] = {
    "docstring-surrogate.btf": "naming.doc_text (issue 3) leaves lone surrogates in docstrings",
    "docstring-surrogate-elf.bpf.o": "naming.doc_text (issue 3) leaves lone surrogates in "
                                     "docstrings",
}
#: Of those, the ones the CLI also gets wrong (the others only break the module).
OPEN_CLI: set[str] = set()


def _maybe_open(name: str, only: set[str] | None = None) -> list[pytest.MarkDecorator]:
    if name in OPEN and (only is None or name in only):
        return [pytest.mark.xfail(strict=True, reason=OPEN[name])]
    return []


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    with Worker(mem_mb=1024, timeout_s=10) as w:
        yield w


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=_maybe_open(p.name))
                                  for p in FILES])
def test_regression_in_worker(worker: Worker, path: Path) -> None:
    v = worker.run(path.read_bytes())
    assert v["status"] not in BAD, f"{v['status']} in {v.get('stage')}: {v.get('error')}\n" \
        f"{v.get('trace', '')}"


@pytest.mark.parametrize("path", [pytest.param(p, id=p.name, marks=_maybe_open(p.name, OPEN_CLI))
                                  for p in FILES])
def test_regression_on_cli(path: Path, tmp_path: Path) -> None:
    for args in (["dump", path, "--format", "c"], ["info", path],
                 ["gen", path, "-o", tmp_path / "out.py"]):
        r = run_btfgen(*args, cwd=tmp_path)
        assert r.returncode in (0, 1), (args, r.stderr)
        assert "Traceback" not in r.stderr
        if r.returncode == 1:
            assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"btfgen: {path}: ")
            assert r.stdout == ""
