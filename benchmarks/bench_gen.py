"""Generation speed: ``btfgen gen`` of a 60-type object and importing the result.

A BPF object with 40 structs (bitfields, char arrays, nested structs, unions,
enums), 12 enums and 8 unions is compiled, then, interleaved over the
repetitions:

* ``btfgen gen`` as a command (wall, fresh interpreter, bytecode caches) --
  goal < 0.5 s;
* importing the generated module in a fresh interpreter (CPU time of the
  import statement) -- goal < 50 ms -- with bytecode caches written as usual
  (``PYTHONDONTWRITEBYTECODE`` is dropped for these runs, after one warm-up
  import), and without them (every module compiled from source, as in this
  sandbox's environment); ``btfgen.runtime`` alone and the bare interpreter
  start as references;
* ``bpftool gen skeleton`` of the same object as a reference.

Run: .venv/bin/python benchmarks/bench_gen.py [--reps 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
N_STRUCT, N_ENUM, N_UNION = 40, 12, 8


def source() -> str:
    out = ["#include <linux/types.h>", "#include <linux/bpf.h>", "#include <bpf/bpf_helpers.h>"]
    out += [f"enum e{i} {{ E{i}_A = {i}, E{i}_B, E{i}_C = {i * 100} }};" for i in range(N_ENUM)]
    out += [f"union u{i} {{ __u32 w; __u8 b[4]; __u64 q{i}; }};" for i in range(N_UNION)]
    for i in range(N_STRUCT):
        nested = f"struct s{i - 1} inner;" if i and i % 3 == 0 else ""
        out.append(f"struct s{i} {{ __u64 seq; __u32 pid : 20, flags : 12; char comm[16]; "
                   f"enum e{i % N_ENUM} kind; union u{i % N_UNION} u; __s16 arr[4]; {nested} "
                   f"__u8 tail; }};")
    out.append("struct all {" + " ".join(f"struct s{i} m{i};" for i in range(N_STRUCT)) + "};")
    out.append("""
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32);
         __type(value, struct all); } big SEC(".maps");
struct all zero_all;
SEC("tp/syscalls/sys_enter_getppid")
int h(void *ctx) { __u32 k = 0; bpf_map_update_elem(&big, &k, &zero_all, BPF_ANY); return 0; }
char LICENSE[] SEC("license") = "GPL";
""")
    return "\n".join(out)


IMPORT = """
import sys, time
sys.path.insert(0, {d!r})
t = time.process_time()
import {mod}
print(time.process_time() - t)
"""


#: As installed: bytecode caches written and read (this sandbox sets PYTHONDONTWRITEBYTECODE).
CACHED_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd: list[str], **kw: object) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=CACHED_ENV,  # type: ignore[call-overload]
                   **kw)
    return time.perf_counter() - t


def import_cpu(d: Path, mod: str, cached: bool = True) -> float:
    env = dict(os.environ)
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = IMPORT.format(d=str(d), mod=mod)
    if not cached:  # compile from source: no cache may be read either
        code = "import sys; sys.dont_write_bytecode = True; sys.pycache_prefix = '/nonexistent'\n" \
            + code
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, cwd=str(ROOT), env=env).stdout
    return float(out.strip())


def fmt(xs: list[float], unit: float = 1e3, suffix: str = "ms") -> str:
    xs = [x * unit for x in xs]
    return f"{statistics.median(xs):7.1f} {suffix} (min {min(xs):.1f}, max {max(xs):.1f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="btfgen-gen-") as tmpdir:
        d = Path(tmpdir)
        (d / "g60.bpf.c").write_text(source())
        subprocess.run(["clang", "-g", "-O2", "-target", "bpf", "-I",
                        f"/usr/include/{os.uname().machine}-linux-gnu", "-c", str(d / "g60.bpf.c"),
                        "-o", str(d / "g60.bpf.o")], check=True)
        gen_cmd = [sys.executable, "-m", "btfgen", "gen", str(d / "g60.bpf.o"), "-o",
                   str(d / "g60_skel.py")]
        subprocess.run(gen_cmd, check=True, capture_output=True, cwd=str(ROOT), env=CACHED_ENV)
        text = (d / "g60_skel.py").read_text()
        classes = text.count("\nclass ")
        res: dict[str, list[float]] = {k: [] for k in (
            "btfgen gen (command, wall)", "bpftool gen skeleton (wall, reference)",
            "python -c pass (wall, reference)", "import generated module (CPU)",
            "import btfgen.runtime alone (CPU)", "import generated module, no .pyc (CPU)")}
        import_cpu(d, "g60_skel")  # warm-up: writes the bytecode caches
        # The timed runs write elsewhere: rewriting g60_skel.py would make the next
        # import recompile it (its .pyc records the source's mtime).
        rerun_cmd = [*gen_cmd[:-1], str(d / "g60_rerun_skel.py")]
        for _ in range(a.reps):
            res["btfgen gen (command, wall)"].append(timed(rerun_cmd, cwd=str(ROOT)))
            res["bpftool gen skeleton (wall, reference)"].append(
                timed(["bpftool", "gen", "skeleton", str(d / "g60.bpf.o")]))
            res["python -c pass (wall, reference)"].append(timed([sys.executable, "-c", "pass"]))
            res["import generated module (CPU)"].append(import_cpu(d, "g60_skel"))
            res["import btfgen.runtime alone (CPU)"].append(import_cpu(d, "btfgen.runtime"))
            res["import generated module, no .pyc (CPU)"].append(
                import_cpu(d, "g60_skel", cached=False))
    print(f"60-type object ({N_STRUCT} structs, {N_ENUM} enums, {N_UNION} unions + 1; "
          f"{classes} classes generated), {a.reps} interleaved reps, median (min, max):")
    for name, xs in res.items():
        print(f"  {name:42s} {fmt(xs)}")
    gen = statistics.median(res["btfgen gen (command, wall)"])
    imp = statistics.median(res["import generated module (CPU)"])
    print(f"  goals: gen < 0.5 s: {'met' if gen < 0.5 else 'NOT met'} ({gen:.2f} s); "
          f"import < 50 ms: {'met' if imp < 0.05 else 'NOT met'} ({imp * 1e3:.0f} ms)")


if __name__ == "__main__":
    main()
