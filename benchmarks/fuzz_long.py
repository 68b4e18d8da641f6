"""The long fuzzing run: mutants of real objects, then hypothesis-built BTF.

Seeds are the 61 libbpf-tools objects, the test programs compiled with clang
and clang-19, and a raw BTF blob; the mutation engine is ``tests/mutate.py``
and every input goes through the bounded worker of ``tests/fuzz/`` (every
stage in process, 1 GiB address space and 10 s per input by default).  Prints
statistics as it goes and at the end; findings (inputs and verdicts) are
written to ``--out`` to be minimised and kept in ``tests/fuzz/regressions/``.

Run: ``.venv/bin/python benchmarks/fuzz_long.py [--seconds 1800] [--seed N]
[--hypothesis 2000] [--out fuzz-findings]``; exit status 1 if anything was found.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from tests.fuzz.harness import Stats, Worker, fuzz_loop, save_findings  # noqa: E402
from tests.fuzz.test_fuzz_mutation import KINDS_SRC, _raw_seed  # noqa: E402
from tests.helpers.build import compile_bpf  # noqa: E402
from tests.helpers.corpus import extract_corpus  # noqa: E402
from tests.helpers.mutate import Seed  # noqa: E402
from tests.helpers.runtime_zoo import ZOO_SRC  # noqa: E402


def seeds(tmp: Path) -> list[tuple[str, Seed]]:
    objs = extract_corpus(tmp / "corpus")
    objs += [compile_bpf(ZOO_SRC, tmp / "zoo.bpf.o"),
             compile_bpf(KINDS_SRC, tmp / "kinds.bpf.o"),
             compile_bpf(KINDS_SRC, tmp / "kinds19.bpf.o", clang="clang-19"),
             compile_bpf(KINDS_SRC, tmp / "kinds_be.bpf.o", target="bpfeb")]
    out = [(p.name, Seed.from_bytes(p.read_bytes())) for p in objs]
    out.append(("raw.btf", Seed.from_bytes(_raw_seed())))
    return out


def hypothesis_phase(worker: Worker, examples: int, stats: Stats) -> None:
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz.strategies import btf_blobs

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(btf_blobs())
    def run(blob: bytes) -> None:
        stats.add(blob, "hypothesis", worker.run(blob))

    t0 = time.monotonic()
    run()
    stats.seconds = time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1800.0, help="mutation phase length")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: time)")
    ap.add_argument("--hypothesis", type=int, default=2000, help="hypothesis examples")
    ap.add_argument("--mem-mb", type=int, default=1024, help="address space per input")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per input")
    ap.add_argument("--report-every", type=float, default=60.0)
    ap.add_argument("--out", type=Path, default=Path("fuzz-findings"))
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    found = []
    with tempfile.TemporaryDirectory() as d, Worker(args.mem_mb, args.timeout) as worker:
        pool = seeds(Path(d))
        print(f"fuzz_long: seed {seed}, {len(pool)} seed inputs, "
              f"{sum(len(s.records) for _, s in pool)} BTF types to aim at")
        total = Stats()
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            chunk = fuzz_loop(worker, pool, rng, min(args.report_every,
                                                     t_end - time.monotonic()))
            for k, v in chunk.verdicts.items():
                total.verdicts[k] += v
            total.stages_refused.update(chunk.stages_refused)
            total.inputs += chunk.inputs
            total.seconds += chunk.seconds
            total.modules += chunk.modules
            total.roundtrips += chunk.roundtrips
            total.slowest_ms = max(total.slowest_ms, chunk.slowest_ms)
            total.findings += chunk.findings
            if chunk.findings:  # on disk at once: a long run may be cut short
                save_findings(chunk.findings, args.out)
                for f in chunk.findings:
                    print(f"  finding: {f.summary()}", flush=True)
            print(f"[{total.seconds:6.0f}s] {total.inputs} inputs, "
                  f"{total.inputs / max(total.seconds, 1e-9):.0f}/s, "
                  f"{len(total.findings)} findings, worker restarts {worker.restarts}",
                  flush=True)
        print("\nmutation phase:\n" + total.report())
        found += total.findings
        if args.hypothesis:
            hyp = Stats()
            hypothesis_phase(worker, args.hypothesis, hyp)
            print("\nhypothesis phase:\n" + hyp.report())
            found += hyp.findings
    if found:
        paths = save_findings(found, args.out)
        new = sum(1 for f in found if f.new)
        print(f"\n{len(found)} findings ({new} new) written to {paths[0].parent}")
        return 1 if new else 0
    print("\nno findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
