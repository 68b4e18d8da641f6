"""Local storage maps from user space: socket storage by socket, task storage by pidfd,
inode storage by an open file, cgroup storage by a cgroup v2 directory fd."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from btfgen.runtime import LocalStorageMap, RuntimeBpfError
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.gen import load
from tests.helpers.maps_zoo import PID
from tests.helpers.runtime_zoo import load_or_skip

pytestmark = pytest.mark.live

STORAGE_SRC = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task_struct;
struct val { __u64 seen; __u32 pid; };

const volatile __u32 target_pid = 0;

struct { __uint(type, BPF_MAP_TYPE_SK_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC);
         __type(key, int); __type(value, struct val); } socks SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_TASK_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC);
         __type(key, int); __type(value, struct val); } tasks SEC(".maps");

struct { __uint(type, BPF_MAP_TYPE_INODE_STORAGE); __uint(map_flags, BPF_F_NO_PREALLOC);
         __type(key, int); __type(value, __u64); } inodes SEC(".maps");
/* 32: BPF_MAP_TYPE_CGRP_STORAGE (kernel >= 6.2; newer than these uapi headers) */
struct { __uint(type, 32); __uint(map_flags, BPF_F_NO_PREALLOC);
         __type(key, int); __type(value, __u64); } cgroups SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int mark(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	if (pid != target_pid)
		return 0;
	struct task_struct *me = bpf_get_current_task_btf();
	struct val *v = bpf_task_storage_get(&tasks, me, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (v) {
		v->seen += 1;
		v->pid = pid;
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def skel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    d: Path = tmp_path_factory.mktemp("storage")
    obj = compile_bpf(STORAGE_SRC, d / "storage.bpf.o")
    run_btfgen("gen", obj, "-o", d / f"storage_skel_{PID}.py", check=True)
    mod = load(d / f"storage_skel_{PID}.py")
    s = mod.StorageSkel.open()
    s.rodata.target_pid = PID
    try:
        load_or_skip(s.load)
        yield mod, s
    finally:
        s.destroy()


def test_socket_storage_by_socket_object_and_fd(skel: Any) -> None:
    mod, s = skel
    socks = s.maps.socks
    assert isinstance(socks, LocalStorageMap)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a, \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
        assert socks.lookup(a) is None
        socks[a] = mod.Val(seen=5, pid=1)
        socks[b.fileno()] = mod.Val(seen=6, pid=2)
        assert socks[a] == mod.Val(seen=5, pid=1) and socks[b].seen == 6
        del socks[a]
        assert a not in socks and b in socks
    with pytest.raises(RuntimeBpfError, match="map socks: local storage maps cannot be iterated"):
        list(socks)


def test_task_storage_written_by_bpf_read_by_pidfd(skel: Any) -> None:
    mod, s = skel
    link = s.progs.mark.attach()
    try:
        for _ in range(3):
            os.getppid()
    finally:
        link.destroy()
    fd = os.pidfd_open(PID)
    try:
        assert s.maps.tasks[fd] == mod.Val(seen=3, pid=PID)
        s.maps.tasks[fd] = mod.Val(seen=10, pid=PID)
        assert s.maps.tasks[fd].seen == 10
    finally:
        os.close(fd)


def test_inode_storage_by_open_file_and_cgroup_storage_by_directory(skel: Any,
                                                                     tmp_path: Path) -> None:
    _, s = skel
    path = tmp_path / "f"
    path.write_text("x")
    with open(path) as f, open(path) as again:
        s.maps.inodes[f] = 5
        assert s.maps.inodes[again] == 5  # the inode's, whichever fd names it
    with open("/proc/mounts") as mounts:
        cgroup2 = [line.split()[1] for line in mounts if line.split()[2] == "cgroup2"]
    if not cgroup2:
        pytest.skip("no cgroup v2 hierarchy mounted: cgroup storage needs one")
    fd = os.open(cgroup2[0], os.O_RDONLY | os.O_DIRECTORY)
    try:
        s.maps.cgroups[fd] = 7
        assert s.maps.cgroups[fd] == 7
        del s.maps.cgroups[fd]
        assert fd not in s.maps.cgroups
    finally:
        os.close(fd)
