"""A BPF object with every map kind the runtime types (queue, stack, bloom filter,
stack traces, prog array, map-in-map, struct keys, arrays, pinning), generated into
a skeleton module once per test session.

The program runs on getppid() of one pid (``.rodata target_pid``) and numbers its
runs with ``.bss seq`` so each test can tell which values it caused.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import load
from tests.helpers.lint import mypy_strict
from tests.helpers.runtime_zoo import load_or_skip

MAPS_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct key { __u32 pid; __u32 bucket; char tag[8]; };

const volatile __u32 target_pid = 0;
__u64 seq = 0;
__s64 last_stackid = -1;
__u64 tail_hits = 0;

struct { __uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 64);
         __type(value, __u64); } fifo SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_STACK); __uint(max_entries, 64);
         __type(value, __u64); } lifo SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_BLOOM_FILTER); __uint(max_entries, 64);
         __type(value, __u64); } seen SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_STACK_TRACE); __uint(max_entries, 64); __type(key, __u32);
         __uint(value_size, 127 * sizeof(__u64)); } stacks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, struct key);
         __type(value, __u64); } counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 5); __type(key, __u32);
         __type(value, __u64); } arr SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 3); __type(key, __u32);
         __type(value, __u32); } pcpu SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8); __type(key, __u32);
         __type(value, __u64); __uint(pinning, LIBBPF_PIN_BY_NAME); } shared SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 2); __type(key, __u32);
         __type(value, __u32); } jmp SEC(".maps");
struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32);
               __type(value, __u64); } inner_a SEC(".maps"), inner_b SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 2); __type(key, __u32);
         __array(values, struct inner); } outer SEC(".maps") = { .values = { [0] = &inner_a } };
struct { __uint(type, BPF_MAP_TYPE_HASH_OF_MAPS); __uint(max_entries, 4); __type(key, __u32);
         __array(values, struct inner); } outer_by_id SEC(".maps");

static __always_inline void set_inner(__u32 slot, __u64 value)
{
	__u32 zero = 0;
	void *in = bpf_map_lookup_elem(&outer, &slot);
	__u64 *x = in ? bpf_map_lookup_elem(in, &zero) : 0;
	if (x)
		*x = value;
}

SEC("tp/syscalls/sys_enter_getppid")
int tail_target(void *ctx)
{
	__sync_fetch_and_add(&tail_hits, 1);
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int handle(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	__u64 n = __sync_fetch_and_add(&seq, 1);
	__u64 v = n * 3 + 1;
	bpf_map_push_elem(&fifo, &v, 0);
	bpf_map_push_elem(&lifo, &v, 0);
	__u64 b = n * 7;
	bpf_map_push_elem(&seen, &b, 0);
	last_stackid = bpf_get_stackid(ctx, &stacks, 0);
	struct key k = { .pid = target_pid, .bucket = n % 3, .tag = "b" };
	k.tag[1] = '0' + n % 3;
	__u64 one = 1, *c = bpf_map_lookup_elem(&counts, &k);
	if (c)
		__sync_fetch_and_add(c, 1);
	else
		bpf_map_update_elem(&counts, &k, &one, BPF_NOEXIST);
	set_inner(0, n + 100);
	set_inner(1, n + 1100);
	bpf_tail_call(ctx, &jmp, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

PID = os.getpid()


@functools.cache
def build() -> ModuleType:
    """Compile MAPS_SRC, generate ``maps_zoo_skel.py`` (once per test session), check it
    is mypy --strict clean and import it."""
    out = Path(tempfile.mkdtemp(prefix=f"btfgen_maps_zoo_{PID}_"))
    at_exit_of_this_process(lambda: shutil.rmtree(out, True))
    obj = compile_bpf(MAPS_SRC, out / "maps_zoo.bpf.o")
    mod_path = out / "maps_zoo_skel.py"
    run_btfgen("gen", obj, "-o", mod_path, check=True)
    r = mypy_strict([mod_path])
    assert r.returncode == 0, r.stdout + r.stderr
    mod = load(mod_path)
    return mod


def open_skel(mod: ModuleType, **kw: Any) -> Any:
    """``MapsZooSkel.open(**kw)`` filtered on this process; its pinned-by-name map
    goes under a directory of this test session (never /sys/fs/bpf itself)."""
    kw.setdefault("pin_root", session_pin_root())
    skel = mod.MapsZooSkel.open(**kw)  # type: ignore[attr-defined]
    skel.rodata.target_pid = PID
    return skel


@contextlib.contextmanager
def loaded(*, attach: bool = False) -> Iterator[Any]:
    """A loaded skeleton of the maps zoo (its ``handle`` program attached if asked),
    destroyed after; skips the test when the kernel refuses BPF to this process."""
    skel = open_skel(build())
    try:
        load_or_skip(skel.load)
        if attach:
            skel.progs.handle.attach()
        yield skel
    finally:
        skel.destroy()


@functools.cache
def session_pin_root() -> str:
    """A bpffs directory for this test session, emptied and removed at exit."""
    gen = bpffs_dir("session")
    path = next(gen)
    at_exit_of_this_process(gen.close)
    return path


def at_exit_of_this_process(cleanup: Callable[[], object]) -> None:
    """``atexit.register(cleanup)``, skipped in forked children (tests fork): only the
    process that made a temp dir or pin removes it."""
    owner = os.getpid()
    atexit.register(lambda: cleanup() if os.getpid() == owner else None)


def bpffs_dir(tag: str) -> Iterator[str]:
    """A fresh directory on a bpffs (mounting /sys/fs/bpf if missing), removed after."""
    root = "/sys/fs/bpf"
    with open("/proc/mounts") as f:
        mounted = any(line.split()[1] == root and line.split()[2] == "bpf" for line in f)
    if not mounted:
        subprocess.run(["mount", "-t", "bpf", "bpf", root], check=True)
    path = f"{root}/btfgen_{tag}_{PID}"
    os.mkdir(path)
    try:
        yield path
    finally:
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
