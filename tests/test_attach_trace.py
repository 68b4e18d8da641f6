"""Tracing attach methods against the kernel: uprobe/uretprobe, USDT, tracepoints,
perf events, iterators, kprobe and fentry refusals, pinning, and skel.attach().

Each test loads its own skeleton of ``attach_progs.ATTACH_SRC``; records carry
the pid and the attach cookie, so other processes' events are told apart.
"""

from __future__ import annotations

import errno
import os
import platform
import subprocess
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import BpfError, Link
from btfgen.runtime.errors import NotSupportedError, RuntimeBpfError
from btfgen.runtime.perf_event import online_cpus
from btfgen.runtime.system import kprobes_available
from tests.helpers.attach_progs import attach_module, drain, link_ids, open_skel, target_binary
from tests.helpers.build import compile_bpf
from tests.helpers.waiting import wait_for

pytestmark = pytest.mark.live
PID = os.getpid()
NR_GETPPID = {"x86_64": 110, "aarch64": 173}[platform.machine()]


@pytest.fixture(scope="session")
def attach_mod(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return attach_module(tmp_path_factory)


@pytest.fixture(scope="session")
def target_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return target_binary(tmp_path_factory)


def records(skel: Any, mod: ModuleType) -> tuple[Any, list[Any]]:
    got: list[Any] = []
    rb = skel.maps.rb.with_record(mod.Rec).open_ring_buffer(got.append)
    return rb, got


def run_target(exe: Path, n: int) -> int:
    r = subprocess.run([str(exe), str(n)], capture_output=True, text=True, check=True)
    return int(r.stdout)


def test_uprobe_and_uretprobe_with_cookies(attach_mod: ModuleType, target_exe: Path) -> None:
    with open_skel(attach_mod) as skel:
        rb, got = records(skel, attach_mod)
        up = skel.progs.on_uprobe.attach_uprobe(target_exe, "traced", cookie=0x1234)
        ret = skel.progs.on_uretprobe.attach_uprobe(str(target_exe), "traced", retprobe=True,
                                                   cookie=7)
        assert up.fd > 0 and ret.fd > 0 and up.alive
        assert skel.links.on_uprobe == [up] and skel.links.on_uretprobe == [ret]
        assert run_target(target_exe, 4) == sum(i * 3 + 1 for i in range(4))
        drain(rb, got, 8)
        child = {r.pid for r in got}
        assert len(child) == 1 and PID not in child
        assert [(r.kind, r.cookie, r.value) for r in got if r.kind == 1] == [
            (1, 0x1234, i) for i in range(4)]
        assert [(r.kind, r.cookie, r.value) for r in got if r.kind == 2] == [
            (2, 7, i * 3 + 1) for i in range(4)]
        up.destroy()
        assert not up.alive and up.fd == -1 and skel.links.on_uprobe == []
        got.clear()
        run_target(target_exe, 2)
        drain(rb, got, 2)
        assert sorted(r.kind for r in got) == [2, 2]  # the uprobe is gone, the uretprobe not


def test_uprobe_by_pid_and_offset(attach_mod: ModuleType, target_exe: Path) -> None:
    procs = [subprocess.Popen([str(target_exe), "3", "wait"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for _ in range(2)]
    try:
        with open_skel(attach_mod) as skel:
            rb, got = records(skel, attach_mod)
            skel.progs.on_uprobe.attach_uprobe(target_exe, "traced", pid=procs[0].pid,
                                               cookie=1)
            for p in procs:
                p.communicate(b"go\n", timeout=10)
            drain(rb, got, 3)
            time.sleep(0.05)
            rb.poll(0)
            assert [(r.pid, r.value, r.cookie) for r in got] == [
                (procs[0].pid, i, 1) for i in range(3)]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_uprobe_on_a_library_by_name(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        rb, got = records(skel, attach_mod)
        link = skel.progs.on_uprobe.attach_uprobe("libc.so.6", "getpid", pid=PID, cookie=5)
        assert "libc.so.6:getpid" in link.what
        for _ in range(3):
            os.getpid()
        drain(rb, got, 3)
        assert len(got) >= 3 and {(r.kind, r.pid, r.cookie) for r in got} == {(1, PID, 5)}


def test_uprobe_errors_name_the_program_and_binary(attach_mod: ModuleType,
                                                   target_exe: Path) -> None:
    with open_skel(attach_mod) as skel:
        with pytest.raises(BpfError) as e:
            skel.progs.on_uprobe.attach_uprobe(target_exe, "no_such_function")
        assert "on_uprobe" in str(e.value) and "no_such_function" in str(e.value)
        with pytest.raises(BpfError, match="nonexistent"):
            skel.progs.on_uprobe.attach_uprobe("/nonexistent/bin", "f")
        assert skel.links.on_uprobe == []


def test_usdt_with_cookie_and_pid(attach_mod: ModuleType, target_exe: Path) -> None:
    with open_skel(attach_mod) as skel:
        rb, got = records(skel, attach_mod)
        link = skel.progs.on_usdt.attach_usdt(target_exe, "btfgen_test", "tick", cookie=99)
        assert link.alive and link.fd == -1  # several uprobes, no fd of its own
        run_target(target_exe, 3)
        drain(rb, got, 3)
        assert [(r.kind, r.cookie, r.value) for r in got] == [(3, 99, i * 1000 + 3)
                                                              for i in range(3)]
        link.destroy()
        p = subprocess.Popen([str(target_exe), "2", "wait"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
        try:
            skel.progs.on_usdt.attach_usdt(target_exe, "btfgen_test", "tick", pid=p.pid,
                                           cookie=3)
            got.clear()
            run_target(target_exe, 5)  # another pid: not seen
            p.communicate(b"go\n", timeout=10)
            drain(rb, got, 2)
            assert [(r.pid, r.cookie, r.value) for r in got] == [(p.pid, 3, 2), (p.pid, 3, 1002)]
        finally:
            p.kill()
            p.wait()


def test_tracepoint_and_raw_tracepoint_by_name(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        rb, got = records(skel, attach_mod)
        tp = skel.progs.on_tp.attach_tracepoint("syscalls", "sys_enter_getppid")
        raw = skel.progs.on_raw_tp.attach_raw_tracepoint("sys_enter")
        assert tp.fd > 0 and raw.fd > 0
        for _ in range(3):
            os.getppid()
        drain(rb, got, 6)
        rb.poll(0)
        assert sum(1 for r in got if r.kind == 4) == 3
        assert sum(1 for r in got if r.kind == 5 and r.value == NR_GETPPID) == 3
        assert {r.pid for r in got} == {PID}
        with pytest.raises(BpfError, match="no_such_tp"):
            skel.progs.on_tp.attach_tracepoint("syscalls", "no_such_tp")


def test_perf_event_cpu_clock_one_link_per_cpu(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        counts = skel.maps.perf_counts
        link = skel.progs.on_perf.attach_perf_event("cpu-clock", freq=1000)
        cpus = online_cpus()
        assert len(link.parts) == len(cpus) and all(p.fd > 0 for p in link.parts)
        # ~1000 a second on each CPU: wait for 50 each (seconds under load), not a fixed time
        seen = wait_for(lambda: [counts[c] for c in cpus], lambda s: all(n > 50 for n in s))
        assert all(n > 50 for n in seen), seen
        link.destroy()
        assert not link.alive and skel.links.on_perf == []
        after = [counts[c] for c in cpus]
        time.sleep(0.1)
        assert [counts[c] for c in cpus] == after  # detached: no more samples
        one = skel.progs.on_perf.attach_perf_event((1, 0), period=1_000_000, cpus=[cpus[0]])
        wait_for(lambda: counts[cpus[0]], lambda n: n > after[0])
        assert len(one.parts) == 1 and counts[cpus[0]] > after[0]
        one.destroy()
        before = sum(counts[c] for c in cpus)
        mine = skel.progs.on_perf.attach_perf_event("task-clock", freq=1000, pid=PID)
        assert len(mine.parts) == 1  # one event following this process on any CPU
        # run for 0.2 s of this process's CPU time (task-clock only ticks while it is
        # on a CPU; under load that takes longer than 0.2 s of wall time)
        cpu0, end = time.process_time(), time.monotonic() + 30
        while time.process_time() - cpu0 < 0.2 and time.monotonic() < end:
            pass
        assert sum(counts[c] for c in cpus) - before > 50
        with pytest.raises(ValueError, match="unknown event 'bogus'"):
            skel.progs.on_perf.attach_perf_event("bogus")
        with pytest.raises(ValueError, match="not both"):
            skel.progs.on_perf.attach_perf_event(freq=10, period=10)


def test_perf_event_hardware_event_refusal_is_one_sentence(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        try:
            link = skel.progs.on_perf.attach_perf_event("cycles", period=10_000_000)
        except BpfError as e:
            assert e.errno in (errno.ENOENT, errno.EOPNOTSUPP)
            assert "\n" not in str(e) and "cycles" in str(e) and "on_perf" in str(e)
            assert skel.links.on_perf == []
        else:
            assert link.fd > 0  # a machine with a PMU


@pytest.mark.skipif(kprobes_available(), reason="this kernel has kprobes: no refusal to test")
def test_kprobes_refused_in_one_sentence(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        prog = skel.progs.on_kprobe
        for attach in (lambda: prog.attach_kprobe("do_nanosleep"),
                       lambda: prog.attach_kprobe("do_nanosleep", retprobe=True, cookie=1),
                       lambda: prog.attach_kprobe_multi("do_nano*")):
            with pytest.raises(NotSupportedError) as e:
                attach()
            msg = str(e.value)
            assert msg.startswith("program on_kprobe: this kernel has no kprobes")
            assert "\n" not in msg and e.value.errno == errno.EOPNOTSUPP
        assert skel.links.on_kprobe == []


FENTRY_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
SEC("fentry/do_nanosleep")
int on_fentry(void *ctx) { return 0; }
SEC("fentry")
int on_later(void *ctx) { return 0; }
SEC("tp/syscalls/sys_enter_getppid")
int on_tp(void *ctx) { return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def test_fentry_refusal_or_target(tmp_path: Path) -> None:
    from btfgen.runtime.bpfobj import LibbpfObject
    obj = compile_bpf(FENTRY_SRC, tmp_path / "fentry.bpf.o").read_bytes()
    o = LibbpfObject(obj, "fentry")
    try:
        later = o.programs["on_later"]
        later.set_attach_target("do_nanosleep")
        assert later.type == 26  # BPF_PROG_TYPE_TRACING
        try:
            o.load()
        except NotSupportedError as e:
            msg = str(e)
            assert msg.startswith("program on_fentry (fentry/do_nanosleep): this kernel "
                                  "refuses fentry") and "\n" not in msg
            assert any("on_fentry" in line for line in e.log)
        else:
            assert o.programs["on_fentry"].fd > 0  # a kernel with trampolines
    finally:
        o.close()
    o = LibbpfObject(obj, "fentry")  # without the fentry programs the rest loads
    try:
        o.programs["on_fentry"].autoload = False
        o.programs["on_later"].autoload = False
        o.load()
        assert o.programs["on_tp"].fd > 0 and o.programs["on_fentry"].fd < 0
    finally:
        o.close()


def test_task_iterator_read_and_records(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        stop = threading.Event()
        t = threading.Thread(target=stop.wait)
        t.start()
        try:
            it = skel.progs.on_task.attach_iter(pid=PID)
            recs = it.records(attach_mod.TaskRec)
            assert {(r.pid, r.tgid) for r in recs} == {(tid, PID) for tid in
                                                        map(int, os.listdir("/proc/self/task"))}
            assert len(it.read()) == 8 * len(recs)
            every = skel.progs.on_task.attach_iter().records(attach_mod.TaskRec)
            tgids = {r.tgid for r in every}
            assert {PID, os.getppid()} <= tgids and len(every) > len(recs)
        finally:
            stop.set()
            t.join()
        odd = type("Odd", (), {"SIZE": 8 * len(recs) + 1, "from_bytes": classmethod(
            lambda cls, buf, offset=0: None)})
        with pytest.raises(RuntimeBpfError, match=f"not a multiple of Odd.SIZE = {odd.SIZE}"):
            it.records(odd)
        it.destroy()
        with pytest.raises(RuntimeBpfError, match="is destroyed"):
            it.read()


MAP_ITER_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct bpf_iter_meta { struct seq_file *seq; __u64 session_id; __u64 seq_num; }
    __attribute__((preserve_access_index));
struct bpf_iter__bpf_map_elem { struct bpf_iter_meta *meta; struct bpf_map *map; void *key;
                                void *value; } __attribute__((preserve_access_index));
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32);
         __type(value, __u64); } arr SEC(".maps");

SEC("iter/bpf_map_elem")
int on_map_elem(struct bpf_iter__bpf_map_elem *ctx)
{
	__u32 *k = ctx->key;
	__u64 *v = ctx->value;
	__u64 r[2];

	if (!k || !v)
		return 0;
	r[0] = *k;
	r[1] = *v;
	bpf_seq_write(ctx->meta->seq, r, sizeof(r));
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_map_iterator(tmp_path: Path) -> None:
    from btfgen.runtime.bpfobj import LibbpfObject
    from btfgen.runtime.codec import IntCodec
    from btfgen.runtime.maps import ArrayMap
    obj = compile_bpf(MAP_ITER_SRC, tmp_path / "mapiter.bpf.o").read_bytes()
    o = LibbpfObject(obj, "mapiter")
    try:
        try:
            o.load()
        except BpfError as e:
            if e.errno != errno.EPERM:
                raise
            pytest.skip(f"this kernel refuses map element iterators: {str(e).splitlines()[0]}")
        handle = o.find_map("arr")
        assert handle is not None
        arr = ArrayMap(handle, IntCodec("<I"), IntCodec("<Q"))
        arr[3] = 33
        prog = o.programs["on_map_elem"]
        data = prog.attach_iter(map=arr).read()
        assert data == b"".join(k.to_bytes(8, "little") + (33 if k == 3 else 0).to_bytes(
            8, "little") for k in range(8))
        assert prog.attach_iter(map=arr.fd).read() == data
        with pytest.raises(BpfError):  # a map iterator needs a map
            prog.attach_iter()
    finally:
        o.close()


def test_cgroup_iterator(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        cg = next(p for p in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")
                  if os.path.exists(os.path.join(p, "cgroup.procs")))
        mine = Path(cg) / f"btfgen-iter-{PID}"
        mine.mkdir()
        try:
            (mine / "child").mkdir()
            ino = mine.stat().st_ino.to_bytes(8, "little")  # a cgroup's id is its inode
            child = (mine / "child").stat().st_ino.to_bytes(8, "little")
            it = skel.progs.on_cgroup
            assert it.attach_iter(cgroup=mine).read() == ino
            assert it.attach_iter(cgroup=mine, order="descendants_pre").read() == ino + child
            assert it.attach_iter(cgroup=mine, order="descendants_post").read() == child + ino
            assert it.attach_iter(cgroup=int.from_bytes(child, "little")).read() == child
            with pytest.raises(ValueError, match="order must be one of"):
                it.attach_iter(cgroup=mine, order="sideways")
            with pytest.raises(RuntimeBpfError, match="cannot open cgroup"):
                skel.progs.on_cgroup.attach_iter(cgroup=mine / "missing")
        finally:
            (mine / "child").rmdir()
            mine.rmdir()


def test_link_pin_and_open_pinned(attach_mod: ModuleType) -> None:
    path = Path(f"/sys/fs/bpf/btfgen-test-{PID}-link")
    skel = open_skel(attach_mod)
    try:
        link = skel.progs.auto_tp.attach_tracepoint("syscalls", "sys_enter_getppid")
        link.pin(path)
        assert path.exists()
        link_id = link_ids([link.fd])
    finally:
        skel.destroy()
    try:
        assert link_id <= all_link_ids()  # pinned: still attached with the skeleton gone
        pinned = Link.open_pinned(path)
        assert pinned.fd > 0 and link_ids([pinned.fd]) == link_id
        with pytest.raises(RuntimeBpfError, match="program of link"):
            pinned.program  # noqa: B018
        pinned.unpin()
        assert not path.exists()
        pinned.destroy()
        assert not link_id & all_link_ids()
    finally:
        path.unlink(missing_ok=True)


def all_link_ids() -> set[int]:
    from tests.helpers.bpf_leaks import bpftool_ids
    return bpftool_ids("link")


def test_skel_attach_follows_libbpf(attach_mod: ModuleType, target_exe: Path) -> None:
    with open_skel(attach_mod) as skel:
        rb, got = records(skel, attach_mod)
        by_hand = skel.progs.on_uprobe.attach_uprobe(target_exe, "traced")
        made = skel.attach()
        # bare SEC("uprobe"/"usdt"/"tp"/"raw_tp"/"kprobe"), tc, xdp, socket... are skipped
        assert sorted(lk.program_name for lk in made) == ["auto_tp", "on_task"]
        assert skel.links.auto_tp == [lk for lk in made if lk.program_name == "auto_tp"]
        assert skel.links.on_uprobe == [by_hand] and len(skel.links) == 3
        assert skel.attach() == []  # attached already: nothing new, no error
        os.getppid()
        drain(rb, got, 1)
        assert [r.kind for r in got] == [7]
        skel.detach()
        assert list(skel.links) == [] and not by_hand.alive


def test_skel_attach_rolls_back_and_names_the_program(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        skel.progs.auto_fail.autoattach = True
        assert skel.progs.auto_fail.autoattach
        with pytest.raises(BpfError, match="program auto_fail") as e:
            skel.attach()
        assert e.value.errno == errno.ENOENT
        assert list(skel.links) == []  # auto_tp and on_task were attached, then detached
        skel.progs.auto_fail.autoattach = False
        assert sorted(lk.program_name for lk in skel.attach()) == ["auto_tp", "on_task"]


def test_bare_section_attach_says_what_to_use(attach_mod: ModuleType) -> None:
    with open_skel(attach_mod) as skel:
        with pytest.raises(RuntimeBpfError, match="names no target.*attach_"):
            skel.progs.on_usdt.attach()
