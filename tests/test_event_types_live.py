"""Typed records, live: the record type each source finds decodes what the kernel sends.

For every way of typing a map (annotation, DWARF local, DWARF through a
BPF-to-BPF call, map value, ring buffer reservation, a header for a stripped
object) a program is compiled, its module generated and loaded; every field of
every record must equal what the program wrote.  Two libbpf-tools objects run
too: opensnoop typed by a header written here (its BTF lacks the event) and
sigsnoop typed from its bytecode alone.

Needs root and a kernel that loads BPF; skips (saying why) only when the
kernel refuses.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from btfgen.discovery.resolve import resolve_event_types
from btfgen.elf.reader import read_input
from btfgen.gen.module import generate_to_file
from btfgen.gen.options import GenOptions
from tests.helpers.event_progs import EVENT_H, EVENT_SIZE, expected_fields
from tests.helpers.runtime_zoo import load_or_skip

pytestmark = pytest.mark.live

PID = os.getpid()

#: The event layout of libbpf-tools' opensnoop (its opensnoop.h), written from its source.
OPENSNOOP_H = """\
#include <linux/types.h>
#define TASK_COMM_LEN 16
#define NAME_MAX 255
typedef int pid_t;
typedef unsigned int uid_t;
struct event {
\t__u64 ts;
\tpid_t pid;
\tuid_t uid;
\tint ret;
\tint flags;
\t__u64 callers[2];
\tchar comm[TASK_COMM_LEN];
\tchar fname[NAME_MAX];
};
"""


def generate(obj: Path, dest: Path, **kw: Any) -> ModuleType:
    """Generate the module for ``obj`` into ``dest`` and import it."""
    stem = obj.name.removesuffix(".bpf.o")
    out = dest / f"{stem}_skel.py"
    generate_to_file(str(obj), GenOptions(**kw), str(out))
    spec = importlib.util.spec_from_file_location(f"evlive_{stem}_{dest.name}", out)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def skel_class(mod: ModuleType) -> Any:
    (name,) = [n for n in mod.__all__ if n.endswith("Skel")]
    return getattr(mod, name)


def drain(poll: Callable[[int], int], done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5
    while not done() and time.monotonic() < deadline:
        poll(50)


@pytest.mark.parametrize("variant, header, event", [
    ("annotate", False, False), ("stack", False, False), ("call", False, False),
    ("heap", False, False), ("ring", False, False), ("stack_stripped", True, False),
    ("ring_stripped", True, False),
    # --event alone on an object whose BTF has the struct but no tie to the map
    ("pool", False, True),
    # __type(value, struct event) on a perf array: loads only because the runtime
    # gives the map 4-byte keys and values before load
    ("mapbtf", False, False), ("decltag", False, False),
])
def test_typed_records_from_each_source(variant: str, header: bool, event: bool,
                                        tmp_path: Path, event_variants: dict[str, Path]) -> None:
    obj = event_variants[variant]
    kw: dict[str, Any] = {}
    if header:
        (tmp_path / "event.h").write_text(EVENT_H)
        kw["header"] = str(tmp_path / "event.h")
    if event:
        kw["events"] = {"events": "struct event"}
    mod = generate(obj, tmp_path, **kw)
    event_cls = mod.TYPES["struct event"]
    skel = load_or_skip(skel_class(mod).open_and_load)
    mine: list[Any] = []
    try:
        skel.attach()
        m = skel.maps.events
        keep = lambda r: mine.append(r) if r.pid == PID else None  # noqa: E731
        if variant.startswith("ring"):
            buf = m.open_ring_buffer(keep)
        else:
            buf = m.open_perf_buffer(lambda cpu, r: keep(r))
        n = 16
        # every process's getppid() is recorded: when others' calls filled the
        # buffer (their records are dropped by `keep`), call again, a bounded number
        # of times, until n of ours arrived
        for _ in range(20):
            for _ in range(n):
                os.getppid()
            drain(buf.poll, lambda: len(mine) >= n)
            if len(mine) >= n:
                break
        buf.close()
    finally:
        skel.destroy()
    assert len(mine) >= n
    assert all(type(r) is event_cls for r in mine)
    # other processes may call getppid() too: their records (other pids) take
    # sequence numbers in between, so each record is checked against its own
    for i, r in enumerate(mine):
        assert {k: getattr(r, k) for k in expected_fields(0, 0)} == \
            expected_fields(r.seq, PID), f"record {i}"
    assert len({r.seq for r in mine}) == len(mine)


def test_variable_length_records_are_zero_padded(tmp_path: Path,
                                                 event_variants: dict[str, Path]) -> None:
    """The "varlen" program sends 16 + min(seq & 31, 16) bytes of its 32-byte
    ``struct event`` (as execsnoop sends part of its args array): the generator
    passes the smallest size the bytecode sends, and every record arrives typed
    with the bytes sent exact and the rest zero -- through the compiled drain and
    through libbpf's per-sample callback."""
    obj = event_variants["varlen"]
    mod = generate(obj, tmp_path)
    event_cls = mod.TYPES["struct event"]
    skel = load_or_skip(skel_class(mod).open_and_load)
    assert skel.maps.events.record_codec.min_size == 16
    got: dict[bool, list[Any]] = {}
    try:
        skel.attach()
        for drained in (True, False):
            mine: list[Any] = []
            buf = skel.maps.events.open_perf_buffer(
                lambda cpu, r: mine.append(r) if r.pid == PID else None,  # noqa: B023
                drain=drained)
            n = 40  # seq & 31 takes every value: short and whole records
            for _ in range(n):
                os.getppid()
            drain(buf.poll, lambda: len(mine) >= n)  # noqa: B023
            buf.close()
            got[drained] = mine
    finally:
        skel.destroy()
    for drained, mine in got.items():
        assert len(mine) >= 40, drained
        assert any(r.seq & 31 < 16 for r in mine)
        for r in mine:
            assert type(r) is event_cls
            sent = 16 + min(r.seq & 31, 16)
            # perf rounds the sample (with its u32 size) up to 8 bytes: the bytes
            # between what was sent and that are stale ring contents, not checked
            seen = min(EVENT_SIZE, (sent + 4 + 7) // 8 * 8 - 4)
            raw = r.to_bytes()
            want = event_cls(**expected_fields(r.seq, PID)).to_bytes()
            assert raw[:sent] == want[:sent], (drained, r)
            assert raw[seen:] == bytes(EVENT_SIZE - seen), (drained, r)


@pytest.fixture(scope="session")
def corpus_dir(corpus_objects: list[Path]) -> Path:
    return corpus_objects[0].parent


FLAGS = (os.O_RDONLY, os.O_RDONLY | os.O_NOFOLLOW)


def test_opensnoop_typed_by_a_header(corpus_dir: Path, tmp_path: Path) -> None:
    header = tmp_path / "opensnoop.h"
    header.write_text(OPENSNOOP_H)
    mod = generate(corpus_dir / "opensnoop.bpf.o", tmp_path, header=str(header))
    skel = load_or_skip(skel_class(mod).open_and_load)
    target = str(tmp_path / f"btfgen-open-{PID}").encode()
    got: list[Any] = []
    try:
        skel.attach()
        buf = skel.maps.events.open_perf_buffer(
            lambda cpu, r: got.append(r) if r.fname == target else None)
        for flags in FLAGS:
            try:
                os.close(os.open(target, flags))
            except FileNotFoundError:
                pass
        drain(buf.poll, lambda: len(got) >= 2)
        buf.close()
    finally:
        skel.destroy()
    assert len(got) == 2
    comm = Path("/proc/self/comm").read_bytes().strip()[:15]
    for r, flags in zip(got, FLAGS, strict=True):
        assert (r.pid, r.uid, r.ret, r.comm, r.fname) == (PID, os.getuid(), -2, comm, target)
        assert r.flags == flags | os.O_CLOEXEC  # Python's os.open always adds it


def test_sigsnoop_typed_from_its_bytecode(corpus_dir: Path, tmp_path: Path) -> None:
    """sigsnoop's BTF has struct event only as a hash map value; the bytecode ties
    the perf map to it (stack records of its size, map values of its type)."""
    obj = corpus_dir / "sigsnoop.bpf.o"
    assert resolve_event_types(read_input(str(obj))).maps["events"].source == "bytecode"
    mod = generate(obj, tmp_path)
    event_cls = mod.TYPES["struct event"]
    skel = load_or_skip(skel_class(mod).open_and_load)
    child = subprocess.Popen(["sleep", "30"])
    got: list[Any] = []
    try:
        skel.attach()
        buf = skel.maps.events.open_perf_buffer(
            lambda cpu, r: got.append(r) if r.tpid == child.pid else None)
        os.kill(child.pid, signal.SIGUSR1)
        child.wait()
        # one record from the kill() syscall exit, one from signal_generate
        drain(buf.poll, lambda: len(got) >= 2)
        buf.close()
    finally:
        skel.destroy()
        child.kill()
    comm = Path("/proc/self/comm").read_bytes().strip()[:15]
    assert len(got) == 2
    for r in got:
        assert type(r) is event_cls
        assert (r.pid, r.tpid, r.sig, r.ret, r.comm) == \
            (PID, child.pid, signal.SIGUSR1, 0, comm)
