"""The runtime against the kernel: a type-zoo program, every field of every record.

Needs root and a kernel that loads BPF; skips (saying why) only when the kernel
refuses.  Each test opens its own object and destroys it.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from btfgen.runtime import (
    EXIST,
    NOEXIST,
    BpfError,
    MapKeyError,
    ReadOnlyError,
    possible_cpus,
)
from btfgen.runtime.bpfobj import LibbpfObject
from btfgen.runtime.perf import PerfEventArray
from btfgen.runtime.ringbuf import RingBuf
from btfgen.runtime.system import tracefs_available
from tests.helpers.bpf_leaks import fd_ids, still_alive
from tests.helpers.build import compile_bpf
from tests.helpers.runtime_zoo import ZOO_SRC, Event, expected, load_or_skip, open_zoo

pytestmark = pytest.mark.live

PID = os.getpid()


@pytest.fixture(scope="session")
def zoo_obj(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The compiled zoo program; skips the module when the kernel refuses BPF."""
    out = compile_bpf(ZOO_SRC, tmp_path_factory.mktemp("zoo") / "zoo.bpf.o")
    data = out.read_bytes()
    o, _ = load_or_skip(lambda: open_zoo(data, PID))
    o.close()
    return data


@pytest.fixture
def zoo(zoo_obj: bytes) -> Iterator[tuple[LibbpfObject, dict[str, Any]]]:
    o, maps = open_zoo(zoo_obj, PID)
    yield o, maps
    o.close()


def trigger(n: int) -> None:
    for _ in range(n):
        os.getppid()


def drain(poll: Callable[[int], int], have: Callable[[], int], want: int) -> None:
    end = time.monotonic() + 30  # generous: a loaded machine
    while time.monotonic() < end:
        if have() >= want:
            return
        poll(50)
    raise AssertionError(f"only {have()} of {want} records arrived")


def test_perf_and_ring_records_equal_what_the_program_wrote(zoo: Any) -> None:
    o, maps = zoo
    perf: list[tuple[int, Event]] = []
    ring: list[Event] = []
    pb = maps["events"].open_perf_buffer(lambda cpu, r: perf.append((cpu, r)))
    rb = maps["rb"].open_ring_buffer(ring.append)
    n = 64
    trigger(n)
    drain(pb.poll, lambda: len(perf), n)
    drain(rb.poll, lambda: len(ring), n)
    cpus = possible_cpus()
    assert sorted(r.seq for _, r in perf) == list(range(n))
    for cpu, rec in perf:
        assert 0 <= cpu < cpus
        assert rec == expected(rec.seq, PID)
    assert [r.seq for r in ring] == list(range(n))  # one ring: program order
    assert all(r == expected(r.seq, PID) for r in ring)
    assert pb.received == n and rb.received == n and pb.lost == 0
    assert pb.buffer_count >= 1
    assert pb.fileno() > 0 and rb.fileno() > 0


def test_globals_rodata_bss_data_live_in_kernel_memory(zoo_obj: bytes) -> None:
    o, maps = open_zoo(zoo_obj, PID, load=False)
    try:
        ro, bss, data, custom = maps["rodata"], maps["bss"], maps["data"], maps["custom"]
        assert ro.target_pid == PID and ro.rodata_mult == 1
        assert data.data_value == 7 and data.data_arr == [1, 2, 3, 4]
        assert custom.custom_var == 99 and bss.bss_count == 0
        ro.rodata_mult = 3
        bss.bss_count = 10  # initial value of a .bss variable set before load
        o.load()
        o.attach()
        with pytest.raises(ReadOnlyError, match="rodata_mult is read-only after load"):
            ro.rodata_mult = 4
        assert ro.rodata_mult == 3 and ro.target_pid == PID
        assert bss.bss_count == 10
        trigger(5)
        assert bss.bss_count == 15  # the program's increments, read from the map's memory
        assert data.data_value == 14 * 3  # last seq (14) times the rodata multiplier
        bss.bss_count = 1000  # written into kernel memory: the next event gets seq 1000
        got: list[Event] = []
        rb = maps["rb"].open_ring_buffer(got.append)
        trigger(1)
        drain(rb.poll, lambda: len(got), 6)
        assert [r.seq for r in got] == [10, 11, 12, 13, 14, 1000]
        assert got[-1] == expected(1000, PID)
        data.data_arr = [9, 8, 7, 6]
        custom.custom_var = 12345
        assert data.data_arr == [9, 8, 7, 6] and custom.custom_var == 12345
        assert data.read_bytes()[8:24] == bytes([9, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0, 6, 0, 0, 0])
    finally:
        o.close()


def test_typed_map_operations(zoo: Any) -> None:
    o, maps = zoo
    trigger(20)
    h = maps["by_seq"]
    assert sorted(h.keys()) == list(range(20))
    assert len(list(h)) == 20
    for k, v in h.items():
        assert v == expected(k, PID)
    assert 3 in h and 999 not in h
    assert h.lookup(999) is None and h.lookup(999, "dflt") == "dflt"
    with pytest.raises(MapKeyError):
        h[999]
    assert dict(h.lookup_batch(chunk=7)) == {k: expected(k, PID) for k in range(20)}
    e = expected(500, 1)
    with pytest.raises(BpfError) as ei:
        h.update(3, e, NOEXIST)
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(BpfError) as ei:
        h.update(500, e, EXIST)
    assert ei.value.errno == errno.ENOENT
    h.update(500, e, NOEXIST)
    h[3] = e
    assert h[500] == e and h[3] == e
    h.delete(500)
    del h[3]
    assert 500 not in h and 3 not in h
    with pytest.raises(MapKeyError):
        h.delete(500)
    h.update_batch([(600 + i, expected(600 + i, 2)) for i in range(10)])
    assert all(h[600 + i] == expected(600 + i, 2) for i in range(10))
    h.delete_batch(range(600, 605))
    assert sorted(k for k in h if k >= 600) == list(range(605, 610))
    taken = dict(h.lookup_and_delete_batch())
    assert len(taken) == 24 and len(list(h)) == 0

    arr = maps["arr"]
    assert len(arr) == 8 and arr[7] == 0
    arr[7] = 2**64 - 1
    assert arr[7] == 2**64 - 1 and sorted(arr.keys()) == list(range(8))
    with pytest.raises(BpfError):
        arr[8] = 1
    arr.update_batch([(i, i * i) for i in range(8)])
    assert [v for _, v in sorted(arr.lookup_batch())] == [i * i for i in range(8)]

    pc = maps["pcpu"]
    per_cpu = pc[0]
    assert len(per_cpu) == possible_cpus() and sum(per_cpu) == 20
    pc[0] = list(range(possible_cpus()))
    assert pc[0] == list(range(possible_cpus()))
    pc.update(0, 5)  # one value for every CPU
    assert pc[0] == [5] * possible_cpus()
    with pytest.raises(ValueError, match="per-CPU values or one value for every CPU"):
        pc.update(0, [1] * (possible_cpus() + 1))


def test_callback_exceptions_come_out_of_poll_and_buffer_stays_usable(zoo: Any) -> None:
    o, maps = zoo
    seen: list[int] = []

    def cb(cpu: int, r: Event) -> None:
        seen.append(r.seq)
        if r.seq == 2:
            raise ValueError("boom at 2")

    pb = maps["events"].open_perf_buffer(cb)
    trigger(5)
    with pytest.raises(ValueError, match="boom at 2"):
        for _ in range(20):
            pb.poll(50)
    drain(pb.poll, lambda: len(seen), 5)
    trigger(3)
    drain(pb.poll, lambda: len(seen), 8)
    assert sorted(seen) == list(range(8))

    ring: list[int] = []

    def rcb(r: Event) -> None:
        ring.append(r.seq)
        if r.seq == 9:
            raise KeyError("ring boom")

    rb = maps["rb"].open_ring_buffer(rcb)  # the ring holds 0..7 already
    trigger(5)
    with pytest.raises(KeyError, match="ring boom"):
        for _ in range(20):
            rb.poll(50)
    if rb.drained:  # delivery goes on past a failing callback, as for perf buffers
        assert ring == list(range(13))
    else:  # libbpf's callback path stops right after the failing record
        assert ring == list(range(10))
    drain(rb.poll, lambda: len(ring), 13)
    assert ring == list(range(13))


def test_lost_samples_are_counted(zoo: Any) -> None:
    o, maps = zoo
    lost_reports: list[tuple[int, int]] = []
    got: list[int] = []
    pb = maps["events"].open_perf_buffer(lambda cpu, r: got.append(r.seq),
                                         lambda cpu, n: lost_reports.append((cpu, n)),
                                         page_count=1)
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        trigger(3000)  # one page holds ~50 samples: most are lost
        pb.poll(100)
        trigger(1)  # the kernel reports losses with the next sample that fits
        pb.poll(100)
        pb.consume()
    finally:
        os.sched_setaffinity(0, old)
    total = maps["bss"].bss_count
    assert total == 3001
    assert pb.lost > 2000 and pb.lost == sum(n for _, n in lost_reports)
    assert len(got) + pb.lost == total
    assert len(got) == pb.received


def test_blocking_iterator_and_asyncio_reader(zoo: Any) -> None:
    o, maps = zoo
    pb = maps["events"].open_perf_buffer()
    trigger(4)
    it = iter(pb)
    recs = [next(it) for _ in range(4)]
    assert sorted(r.seq for _, r in recs) == [0, 1, 2, 3]

    rb = maps["rb"].open_ring_buffer()

    async def read(n: int) -> list[Event]:
        out: list[Event] = []
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, trigger, n)
        async for rec in rb:
            out.append(rec)
            if len(out) == n:
                break
        return out

    got = asyncio.run(asyncio.wait_for(read(8), 10))
    # the ring also got 0..3 from the first trigger
    assert [r.seq for r in got] == list(range(8))
    with pytest.raises(TypeError):
        iter(maps["rb"].open_ring_buffer(print))


def assert_gone(ids: dict[str, set[int]]) -> None:
    """Every program, map and link in ``ids`` is gone from the kernel."""
    assert ids["prog_id"] and ids["map_id"] and ids["link_id"]
    left = still_alive(ids)
    assert not left, f"still in the kernel: {left}"


def use_everything(o: LibbpfObject, maps: dict[str, Any]) -> dict[str, set[int]]:
    pb = maps["events"].open_perf_buffer(lambda c, r: None)
    maps["rb"].open_ring_buffer(lambda r: None)
    trigger(3)
    pb.poll(10)
    assert maps["bss"].bss_count == 3  # mmaps .bss
    assert maps["rodata"].target_pid == PID  # mmaps .rodata read-only
    before = {k: set(v) for k, v in fd_ids().items()}
    return before


@pytest.mark.parametrize("how", ["close", "gc", "exception", "keyboard_interrupt"])
def test_cleanup_leaves_no_prog_map_link_or_fd(zoo_obj: bytes, how: str) -> None:
    fds_before = set(os.listdir("/proc/self/fd"))
    base = fd_ids()
    o, maps = open_zoo(zoo_obj, PID)
    ids = use_everything(o, maps)
    ours = {k: ids[k] - base[k] for k in ids}
    if how == "close":
        o.close()
        o.close()  # idempotent
    elif how == "gc":
        del o, maps
        gc.collect()
    elif how == "exception":
        with pytest.raises(RuntimeError):
            try:
                raise RuntimeError("user code failed")
            finally:
                o.close()
    else:
        pb = maps["events"].open_perf_buffer(lambda c, r: (_ for _ in ()).throw(
            KeyboardInterrupt()))
        trigger(1)
        with pytest.raises(KeyboardInterrupt):
            try:
                end = time.monotonic() + 30  # the record comes at once, unless loaded
                while time.monotonic() < end:
                    pb.poll(20)
            finally:
                o.close()
    assert set(os.listdir("/proc/self/fd")) <= fds_before
    assert_gone(ours)


def test_cleanup_at_interpreter_exit(zoo_obj: bytes, tmp_path: Path) -> None:
    """A child that never calls close(): the finalizer runs at exit, ids are gone after."""
    obj = tmp_path / "zoo.bpf.o"
    obj.write_bytes(zoo_obj)
    code = f"""
import os, sys, json
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from tests.helpers.runtime_zoo import open_zoo
from tests.helpers.bpf_leaks import fd_ids
o, maps = open_zoo(open({str(obj)!r}, 'rb').read(), os.getpid())
maps["events"].open_perf_buffer(lambda c, r: None)
print(json.dumps({{k: sorted(v) for k, v in fd_ids().items()}}), flush=True)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert_gone({k: set(v) for k, v in json.loads(r.stdout).items()})


VERIFIER_FAIL = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1); __type(key, __u32);
         __type(value, __u64); } m SEC(".maps");
SEC("tp/syscalls/sys_enter_getppid")
int bad(void *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&m, &k);
	return *v;  /* no NULL check: the verifier rejects this */
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_load_failure_carries_errno_and_verifier_log(zoo_obj: bytes, tmp_path: Path) -> None:
    obj = compile_bpf(VERIFIER_FAIL, tmp_path / "bad.bpf.o").read_bytes()
    o = LibbpfObject(obj, "bad")
    fds = set(os.listdir("/proc/self/fd"))
    with pytest.raises(BpfError) as ei:
        o.load()
    e = ei.value
    assert e.errno == errno.EACCES
    assert any("invalid mem access 'map_value_or_null'" in line for line in e.log), e.log
    assert "load BPF object bad" in str(e) and "libbpf log:" in str(e)
    o.close()
    assert set(os.listdir("/proc/self/fd")) <= fds


def test_not_root_gives_one_clear_sentence(zoo_obj: bytes, tmp_path: Path) -> None:
    obj = tmp_path / "zoo.bpf.o"
    obj.write_bytes(zoo_obj)
    code = f"""
import os, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from tests.helpers.runtime_zoo import open_zoo
from btfgen.runtime import BpfPermissionError
from btfgen.runtime._libbpf import lib
data = open({str(obj)!r}, 'rb').read()
lib()
os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
try:
    open_zoo(data, os.getpid())
except BpfPermissionError as e:
    print(str(e).splitlines()[0])
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "needs root or CAP_BPF + CAP_PERFMON; this process runs as uid 65534" in r.stdout


def test_tracefs_is_there_after_attach(zoo: Any) -> None:
    assert tracefs_available()


def test_missing_libbpf_names_the_package(tmp_path: Path) -> None:
    code = "from btfgen.runtime._libbpf import lib\nlib()"
    env = dict(os.environ, BTFGEN_LIBBPF=str(tmp_path / "nope.so"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert "LibbpfMissingError" in r.stderr and "libbpf1" in r.stderr
    assert "BTFGEN_LIBBPF=" in r.stderr


def test_perf_buffer_cpus_and_wakeup_events(zoo: Any) -> None:
    o, maps = zoo
    cpu0 = min(os.sched_getaffinity(0))
    got: list[tuple[int, Event]] = []
    pb = maps["events"].open_perf_buffer(lambda cpu, r: got.append((cpu, r)), cpus=[cpu0],
                                         wakeup_events=1000)
    assert pb.buffer_count == 1
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu0})
    try:
        trigger(10)
    finally:
        os.sched_setaffinity(0, old)
    # fewer than 1000 samples: no wakeup (the epoll fd is not readable) ...
    assert select.select([pb.fileno()], [], [], 0)[0] == [] and got == []
    assert pb.poll(100) == 10  # ... but poll's timeout drains what is waiting
    assert pb.consume() == 0
    assert [(c, r.seq) for c, r in got] == [(cpu0, i) for i in range(10)]


def test_settings_before_load(zoo_obj: bytes) -> None:
    o, maps = open_zoo(zoo_obj, PID, load=False)
    try:
        maps["rb"].max_entries = 1 << 16
        maps["by_seq"].max_entries = 7
        prog = o.programs["handle"]
        assert prog.autoload and prog.autoattach and prog.fd < 0
        o.load()
        assert maps["rb"].max_entries == 1 << 16 and maps["by_seq"].max_entries == 7
        with pytest.raises(Exception, match="cannot set max_entries after load"):
            maps["by_seq"].max_entries = 8
        links = o.attach()
        assert [lk.program.name for lk in links] == ["handle"] and prog.links == links
        trigger(9)
        assert sorted(maps["by_seq"].keys()) == list(range(7))  # full at 7 entries
        prog.detach()
        assert prog.links == [] and not links[0].alive and links[0].fd == -1
    finally:
        o.close()
    with pytest.raises(Exception, match="is closed"):
        maps["by_seq"].lookup(1)


def test_untyped_buffers_give_bytes_and_with_record_types_them(zoo: Any) -> None:
    o, maps = zoo
    raw_map = PerfEventArray(o.find_map("events"))
    raw: list[Any] = []
    typed: list[Any] = []
    pb = raw_map.open_perf_buffer(lambda cpu, r: raw.append(r))
    rb = RingBuf(o.find_map("rb")).with_record(Event).open_ring_buffer(typed.append)
    trigger(3)
    drain(pb.poll, lambda: len(raw), 3)
    drain(rb.poll, lambda: len(typed), 3)
    assert all(isinstance(r, bytes) and len(r) == 60 for r in raw)  # 56 + padding to 8
    assert sorted(Event.from_bytes(r).seq for r in raw) == [0, 1, 2]
    assert typed == [expected(i, PID) for i in range(3)]


def test_too_old_libbpf_is_refused_by_version() -> None:
    """Any library without libbpf's version functions counts as older than 1.0."""
    code = "from btfgen.runtime._libbpf import lib\nlib()"
    env = dict(os.environ, BTFGEN_LIBBPF="libc.so.6")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode != 0
    assert ("libc.so.6 has no libbpf_major_version(), so it is no libbpf or one older than 0.6,"
            " and btfgen needs libbpf 1.0: install a newer one") in r.stderr


def test_other_libbpf_build_via_environment() -> None:
    path = "/usr/lib/x86_64-linux-gnu/libbpf.so.1"
    if not os.path.exists(path):
        pytest.skip(f"{path} not present on this architecture")
    code = "from btfgen.runtime._libbpf import version\nprint(version())"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, BTFGEN_LIBBPF=path), check=True)
    assert r.stdout.startswith("v1.")


def test_destroy_from_inside_a_callback_is_safe(zoo_obj: bytes) -> None:
    o, maps = open_zoo(zoo_obj, PID)
    seen: list[int] = []

    def cb(cpu: int, r: Event) -> None:
        seen.append(r.seq)
        o.close()  # frees the buffer only once poll() has returned

    pb = maps["events"].open_perf_buffer(cb)
    rb = maps["rb"].open_ring_buffer(lambda r: o.close())
    trigger(3)
    for _ in range(20):
        if seen:
            break
        pb.poll(20)
    assert seen and pb.closed and o.closed and rb.closed
    with pytest.raises(ValueError, match="closed"):
        pb.poll(0)
