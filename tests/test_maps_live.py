"""Typed maps against the kernel: queue/stack/bloom, stack traces, prog array, map-in-map,
struct keys, clear(), pinning; one BPF object (tests/maps_zoo.py) drives them."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import (
    ArrayMap,
    BloomFilterMap,
    HashMap,
    MapOfMaps,
    PerCpuArrayMap,
    ProgArrayMap,
    QueueMap,
    StackMap,
    StackTraceMap,
    possible_cpus,
)
from btfgen.runtime.errors import RuntimeBpfError
from tests.helpers.maps_zoo import PID, bpffs_dir, build, loaded, open_skel
from tests.helpers.runtime_zoo import load_or_skip

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def mod() -> ModuleType:
    return build()


@pytest.fixture
def skel() -> Iterator[Any]:
    with loaded(attach=True) as s:
        yield s


def fire(n: int) -> None:
    for _ in range(n):
        os.getppid()


def test_generated_classes(skel: Any) -> None:
    from btfgen.runtime.libbpf import ffi, lib

    m = skel.maps
    assert lib.bpf_map__fd(m.fifo.handle) == m.fifo.fd > 0
    assert ffi.typeof(m.stacks.handle) is ffi.typeof("struct bpf_map *")
    kinds = {name: type(getattr(m, name)) for name in vars(m)}
    assert kinds == {"fifo": QueueMap, "lifo": StackMap, "seen": BloomFilterMap,
                     "stacks": StackTraceMap, "counts": HashMap, "arr": ArrayMap,
                     "pcpu": PerCpuArrayMap, "shared": HashMap, "jmp": ProgArrayMap,
                     "inner_a": ArrayMap, "inner_b": ArrayMap, "outer": MapOfMaps,
                     "outer_by_id": MapOfMaps}


def test_queue_and_stack_give_what_bpf_pushed_in_order(skel: Any) -> None:
    fire(5)
    pushed = [n * 3 + 1 for n in range(5)]
    assert skel.maps.fifo.peek() == pushed[0]
    assert [skel.maps.fifo.pop() for _ in range(5)] == pushed
    assert skel.maps.fifo.pop() is None and skel.maps.fifo.peek() is None
    assert skel.maps.lifo.peek() == pushed[-1]
    assert skel.maps.lifo.pop_all() == pushed[::-1]
    assert skel.maps.lifo.pop() is None
    # and from user space, both ways
    for v in (10, 20, 30):
        skel.maps.fifo.push(v)
        skel.maps.lifo.push(v)
    assert skel.maps.fifo.pop_all() == [10, 20, 30]
    assert skel.maps.lifo.pop_all() == [30, 20, 10]


def test_queue_full_raises_or_overwrites(skel: Any) -> None:
    q = skel.maps.fifo
    for v in range(64):
        q.push(v)
    with pytest.raises(OSError) as e:
        q.push(64)
    assert "map fifo: push" in str(e.value)
    q.push(64, overwrite=True)  # drops the oldest
    assert q.pop_all() == list(range(1, 65))


def test_bloom_filter_membership(skel: Any) -> None:
    fire(4)
    seen = skel.maps.seen
    assert all(n * 7 in seen for n in range(4))
    misses = sum(v in seen for v in range(100_000, 100_200))
    assert misses < 20  # 64 entries, default hashes: false positives are rare
    seen.push(123_456_789)
    assert 123_456_789 in seen


def test_stack_trace_lookup_gives_trimmed_kernel_addresses(skel: Any) -> None:
    fire(1)
    sid = skel.data.last_stackid
    assert sid >= 0, f"bpf_get_stackid failed: {sid}"
    ips = skel.maps.stacks[sid]
    assert 0 < len(ips) < 127 and 0 not in ips
    assert all(ip >= 0xFFFF_8000_0000_0000 for ip in ips), [hex(i) for i in ips]  # kernel half
    assert sid in list(skel.maps.stacks)


def test_stack_trace_value_size_is_settable_before_load(mod: ModuleType) -> None:
    skel = open_skel(mod)
    try:
        skel.maps.stacks.value_size = 3 * 8
        assert skel.maps.stacks.value_size == 24
        with pytest.raises(ValueError, match="multiple of 8"):
            skel.maps.stacks.value_size = 20
        load_or_skip(skel.load)
        skel.progs.handle.attach()
        fire(1)
        ips = skel.maps.stacks[skel.data.last_stackid]
        assert 0 < len(ips) <= 3
        with pytest.raises(RuntimeBpfError, match="after load"):
            skel.maps.stacks.value_size = 64
    finally:
        skel.destroy()


def test_prog_array_tail_call_after_setting_a_program(skel: Any) -> None:
    jmp = skel.maps.jmp
    fire(2)
    assert skel.bss.tail_hits == 0 and jmp.lookup(0) is None
    jmp[0] = skel.progs.tail_target
    fire(3)
    assert skel.bss.tail_hits == 3
    assert jmp[0] is skel.progs.tail_target
    assert isinstance(jmp.lookup_id(0), int) and jmp.lookup_id(1) is None
    del jmp[0]
    fire(1)
    assert skel.bss.tail_hits == 3
    with pytest.raises(TypeError,
                       match=r"map jmp: value must be a program \(skel.progs.<name>\), got int"):
        jmp[1] = 5


def test_map_in_map_inner_set_by_object(skel: Any) -> None:
    outer, a, b = skel.maps.outer, skel.maps.inner_a, skel.maps.inner_b
    assert outer[0] is a and outer.lookup(1) is None  # declared in the object
    fire(1)
    assert a[0] == 100 and b[0] == 0
    outer[1] = b
    fire(1)
    assert a[0] == 101 and b[0] == 1101
    assert outer[1] is b and outer.lookup_id(1) == b.id
    assert dict(outer.items()) == {0: a, 1: b}
    with pytest.raises(TypeError, match="map outer: value must be a map"):
        outer[1] = skel.progs.handle
    by_id = skel.maps.outer_by_id  # HASH_OF_MAPS: keys come and go
    by_id[70] = b
    by_id[71] = a
    assert dict(by_id.items()) == {70: b, 71: a}
    del by_id[70]
    assert list(by_id) == [71] and by_id.lookup(70) is None


def test_struct_keys_work_with_dict_and_sorted(mod: ModuleType, skel: Any) -> None:
    fire(7)
    items = sorted(skel.maps.counts.items())
    Key = mod.Key
    want = [(Key(pid=PID, bucket=b, tag=f"b{b}".encode()), n) for b, n in ((0, 3), (1, 2),
                                                                          (2, 2))]
    assert items == want
    d = dict(skel.maps.counts.items())
    assert d[items[1][0]] == 2 and len(d) == 3
    assert {k.bucket for k in d} == {0, 1, 2}
    k = items[0][0]
    assert isinstance(k, Key) and skel.maps.counts[k] == 3
    with pytest.raises(AttributeError, match="frozen"):
        k.bucket = 9
    k2 = dataclasses.replace(k, bucket=9)
    skel.maps.counts[k2] = 40
    assert skel.maps.counts[Key(pid=PID, bucket=9, tag=b"b0")] == 40
    assert sorted(skel.maps.counts)[-1] == k2


def test_array_clear_zeroes_plain_and_per_cpu(skel: Any) -> None:
    arr, pcpu = skel.maps.arr, skel.maps.pcpu
    for i in range(5):
        arr[i] = i + 1
    pcpu[2] = 7
    assert list(arr.values()) == [1, 2, 3, 4, 5] and pcpu[2] == [7] * possible_cpus()
    arr.clear()
    pcpu.clear()
    assert list(arr.values()) == [0] * 5
    assert all(v == [0] * possible_cpus() for v in pcpu.values())


def test_lookup_batch_of_zero_or_negative_raises_at_once(skel: Any) -> None:
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"map counts: lookup_batch chunk must be a "
                                             f"positive number of elements, got {bad}"):
            skel.maps.counts.lookup_batch(bad)
    with pytest.raises(ValueError, match="lookup_and_delete_batch chunk"):
        skel.maps.counts.lookup_and_delete_batch(0)
    skel.maps.counts[skel.maps.counts.key_codec.cls(pid=1)] = 5
    assert len(skel.maps.counts.lookup_batch(1)) == 1  # a chunk of one still works


def test_pinning_by_name_shares_the_map_between_two_skeletons(mod: ModuleType) -> None:
    for pin_dir in bpffs_dir("pinroot"):
        first = open_skel(mod, pin_root=pin_dir)
        second = None
        try:
            assert first.maps.shared.pin_path == f"{pin_dir}/shared"
            load_or_skip(first.load)
            assert os.path.exists(f"{pin_dir}/shared") and first.maps.shared.pinned
            first.maps.shared[5] = 55
            second = open_skel(mod, pin_root=pin_dir)
            second.load()
            assert second.maps.shared[5] == 55  # the same kernel map
            second.maps.shared[6] = 66
            assert first.maps.shared[6] == 66 and first.maps.shared.id == second.maps.shared.id
            assert first.maps.arr.id != second.maps.arr.id  # unpinned maps stay apart
        finally:
            first.destroy()
            if second is not None:
                second.destroy()
        assert os.path.exists(f"{pin_dir}/shared")  # pins outlive their skeletons


def test_pin_unpin_and_reuse_pinned(mod: ModuleType, tmp_path: Path) -> None:
    for pin_dir in bpffs_dir("pin"):
        path = f"{pin_dir}/counts"
        with open_skel(mod, pin_root=pin_dir) as first:
            load_or_skip(first.load)
            first.maps.arr[3] = 33
            first.maps.arr.pin(path)
            assert os.path.exists(path)
            with open_skel(mod, pin_root=pin_dir) as second:
                second.maps.arr.reuse_pinned(path)
                second.load()
                assert second.maps.arr[3] == 33 and second.maps.arr.id == first.maps.arr.id
            first.maps.arr.unpin()
            assert not os.path.exists(path)
            with pytest.raises(OSError) as e:
                first.maps.arr.pin(str(tmp_path / "arr"))
            assert str(e.value) == (f"map arr: pin at {tmp_path}/arr (its directory is not on a "
                                    "bpffs: pin under /sys/fs/bpf, or mount one: mount -t bpf "
                                    "bpf DIR): Invalid argument")
        with open_skel(mod, pin_root=pin_dir) as third:
            with pytest.raises(OSError, match=f"map arr: open pinned map {path}: No such file"):
                third.maps.arr.reuse_pinned(path)
            load_or_skip(third.load)
            with pytest.raises(RuntimeBpfError, match="after load"):
                third.maps.arr.reuse_pinned(path)
            with pytest.raises(RuntimeBpfError, match=r"map arr has no pin path; say which pin "
                                                      r"to remove: unpin\(path\)"):
                third.maps.arr.unpin()


def test_skeleton_open_keyword_reaches_libbpf(mod: ModuleType, tmp_path: Path) -> None:
    with open_skel(mod, pin_root=str(tmp_path)) as skel:
        assert skel.maps.shared.pin_path == f"{tmp_path}/shared"
        assert skel.maps.arr.pin_path is None


def test_queue_shared_by_threads_and_a_forked_child(skel: Any) -> None:
    q = skel.maps.fifo
    pid = os.fork()
    if pid == 0:  # the child's fds name the same map
        code = 0
        try:
            for v in range(1000, 1040):
                q.push(v)
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    got: list[list[int]] = [[] for _ in range(4)]

    def pop_until_empty(out: list[int]) -> None:
        while (v := q.pop()) is not None:
            out.append(v)

    threads = [threading.Thread(target=pop_until_empty, args=(g,)) for g in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    popped = [v for g in got for v in g]
    assert sorted(popped) == list(range(1000, 1040))  # each exactly once
    assert all(g == sorted(g) for g in got)  # FIFO order within each thread
