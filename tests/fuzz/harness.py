"""Drive :mod:`fuzz.worker`: send inputs, collect verdicts, survive crashes.

:class:`Worker` keeps one worker process alive across inputs (importing btfgen
once), bounds each input's address space and time inside the worker and,
should the worker die or wedge in C code, kills and restarts it and reports
the input as a ``crash``/``hang``.  :func:`fuzz_loop` runs mutants of a set of
seeds for a given time and returns :class:`Stats`.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.mutate import Seed, mutate

WORKER = Path(__file__).with_name("worker.py")
ROOT = Path(__file__).resolve().parents[2]

#: Verdicts that are findings (the rest: "ok", "error").
BAD = frozenset({"bug", "timeout", "memory", "crash", "hang"})

#: Findings already reported to their owner and kept in tests/fuzz/regressions/:
#: (stage, text in the error) -> who must fix it.  The tests list them in
#: their output but do not fail on them again; delete an entry once fixed.
KNOWN_OPEN: dict[tuple[str, str], str] = {}


def known_open(verdict: dict[str, Any]) -> str | None:
    """The owner note if ``verdict`` is a finding already reported, else None."""
    for (stage, text), note in KNOWN_OPEN.items():
        if verdict.get("stage") == stage and text in str(verdict.get("error", "")):
            return note
    return None


class Worker:
    """One worker process; ``run(data)`` returns its verdict dict."""

    def __init__(self, mem_mb: int = 1024, timeout_s: float = 5.0,
                 hard_timeout_s: float | None = None) -> None:
        self.mem_mb = mem_mb
        self.timeout_s = timeout_s
        self.hard_timeout_s = hard_timeout_s or timeout_s * 3 + 10
        self.proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self.restarts = 0

    def _start(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(self.mem_mb), str(self.timeout_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, cwd=ROOT)
        self._buf = b""
        return self.proc

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.restarts += 1

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, data: bytes, types: Sequence[str] = (), module: bool = True) -> dict[str, Any]:
        """The verdict for one input (``types``: extra ``--type`` roots)."""
        proc = self.proc or self._start()
        assert proc.stdin is not None and proc.stdout is not None
        header = json.dumps({"types": list(types), "module": module}).encode()
        try:
            proc.stdin.write(struct.pack("<I", len(header)) + header
                             + struct.pack("<I", len(data)) + data)
            proc.stdin.flush()
        except BrokenPipeError:
            self._kill()
            return {"status": "crash", "error": "worker died before reading the input"}
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + self.hard_timeout_s
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self._kill()
                    return {"status": "hang", "error": f"no answer in {self.hard_timeout_s}s"}
                chunk = os.read(fd, 65536)
                if not chunk:
                    code = proc.wait()
                    self._kill()
                    return {"status": "crash", "error": f"worker exited with {code}"}
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        result: dict[str, Any] = json.loads(line)
        return result


@dataclass
class Finding:
    """One input that broke a rule."""

    data: bytes
    origin: str
    verdict: dict[str, Any]

    def summary(self) -> str:
        v = self.verdict
        note = known_open(v)
        known = f" (known: {note})" if note else ""
        return f"{v['status']} in {v.get('stage', '?')}: {v.get('error', '')} [{self.origin}]" \
            f"{known}"

    @property
    def new(self) -> bool:
        """Not one of :data:`KNOWN_OPEN`."""
        return known_open(self.verdict) is None


@dataclass
class Stats:
    """What a fuzzing run did."""

    inputs: int = 0
    seconds: float = 0.0
    verdicts: Counter[str] = field(default_factory=Counter)
    stages_refused: Counter[str] = field(default_factory=Counter)
    modules: int = 0
    roundtrips: int = 0
    slowest_ms: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    def add(self, data: bytes, origin: str, v: dict[str, Any]) -> None:
        self.inputs += 1
        self.verdicts[v["status"]] += 1
        for stage in v.get("errors", {}):
            self.stages_refused[stage] += 1
        if "module" in v:
            self.modules += 1
            self.roundtrips += v["module"].get("roundtrips", 0)
        self.slowest_ms = max(self.slowest_ms, float(v.get("ms", 0.0)))
        if v["status"] in BAD:
            self.findings.append(Finding(data, origin, v))

    def report(self) -> str:
        rate = self.inputs / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.inputs} inputs in {self.seconds:.1f}s ({rate:.0f}/s)",
            "verdicts: " + ", ".join(f"{k} {n}" for k, n in sorted(self.verdicts.items())),
            "refused by stage: " + ", ".join(
                f"{k} {n}" for k, n in sorted(self.stages_refused.items())),
            f"generated modules imported: {self.modules}; record round-trips: "
            f"{self.roundtrips}; slowest input: {self.slowest_ms:.0f} ms",
            f"findings: {len(self.findings)} "
            f"({sum(1 for f in self.findings if f.new)} new, the rest already reported)",
        ]
        lines += [f"  {f.summary()}" for f in self.findings[:20]]
        return "\n".join(lines)


def fuzz_loop(worker: Worker, seeds: Sequence[tuple[str, Seed]], rng: random.Random,
              seconds: float, max_inputs: int | None = None,
              stop_on_finding: bool = False) -> Stats:
    """Mutants of ``seeds`` (name, seed) for ``seconds`` (or ``max_inputs``)."""
    stats = Stats()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if max_inputs is not None and stats.inputs >= max_inputs:
            break
        name, seed = rng.choice(seeds)
        data, what = mutate(seed, rng)
        v = worker.run(data)
        stats.add(data, f"{name}: {what}", v)
        if stop_on_finding and stats.findings:
            break
    stats.seconds = time.monotonic() - t0
    return stats


def save_findings(findings: Sequence[Finding], dest: Path) -> list[Path]:
    """Write each finding's input (and its verdict as JSON) under ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in findings:
        import hashlib

        digest = hashlib.sha256(f.data).hexdigest()[:16]
        p = dest / f"{f.verdict['status']}-{digest}.bin"
        p.write_bytes(f.data)
        p.with_suffix(".json").write_text(json.dumps(
            {"origin": f.origin, "verdict": f.verdict}, indent=1) + "\n")
        paths.append(p)
    return paths
