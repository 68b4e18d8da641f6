"""BPF programs of every attach kind, a user-space target with a function and
USDT probes, and the fixtures that build them and generate their skeleton.

Every program writes ``struct rec`` to the ring buffer ``rb`` (or counts in a
map), so a test can check which program ran, for which pid, with which cookie.
"""

from __future__ import annotations

import os
import platform
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.build import compile_bpf, run_btfgen

ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
CFLAGS = [f"-D__TARGET_ARCH_{ARCH}"]

ATTACH_SRC = r"""
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <linux/bpf_perf_event.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

/* kind: 1 uprobe, 2 uretprobe, 3 usdt, 4 tracepoint, 5 raw tracepoint, 6 kprobe */
struct rec { __u64 cookie; __u64 value; __u32 kind; __u32 pid; __u32 tid; __u32 cpu; };
struct rec *unused_rec __attribute__((unused));

struct pkt_meta { __u64 seq; __u32 ifindex; __u32 len; __u32 ingress_ifindex; __u32 cap; };
struct pkt_meta *unused_meta __attribute__((unused));

const volatile __u32 target_tgid = 0;
__u64 tc_seq = 0;
__u64 sock_created = 0;
__u32 deny_sockets = 0;
__u64 filtered = 0;

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } rb SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 64); __type(key, __u32);
         __type(value, __u64); } perf_counts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 64); __type(key, __u32);
         __type(value, __u64); } perf_cookies SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } tc_events SEC(".maps")
    __attribute__((btf_decl_tag("btfgen:record=struct pkt_meta")));

static __always_inline void emit(__u32 kind, __u64 cookie, __u64 value)
{
	struct rec *r = bpf_ringbuf_reserve(&rb, sizeof(*r), 0);
	__u64 id = bpf_get_current_pid_tgid();
	if (!r)
		return;
	r->cookie = cookie;
	r->value = value;
	r->kind = kind;
	r->pid = id >> 32;
	r->tid = (__u32)id;
	r->cpu = bpf_get_smp_processor_id();
	bpf_ringbuf_submit(r, 0);
}

static __always_inline int ours(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("uprobe")
int BPF_KPROBE(on_uprobe, long arg)
{
	emit(1, bpf_get_attach_cookie(ctx), arg);
	return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(on_uretprobe, long ret)
{
	emit(2, bpf_get_attach_cookie(ctx), ret);
	return 0;
}

SEC("usdt")
int BPF_USDT(on_usdt, long a, long b)
{
	emit(3, bpf_usdt_cookie(ctx), a * 1000 + b);
	return 0;
}

SEC("tp")
int on_tp(void *ctx)
{
	if (ours())
		emit(4, 0, 0);
	return 0;
}

SEC("raw_tp")
int on_raw_tp(struct bpf_raw_tracepoint_args *ctx)
{
	if (ours())
		emit(5, 0, ctx->args[1]);
	return 0;
}

SEC("kprobe")
int on_kprobe(struct pt_regs *ctx)
{
	emit(6, 0, 0);
	return 0;
}

SEC("perf_event")
int on_perf(struct bpf_perf_event_data *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 *c = bpf_map_lookup_elem(&perf_counts, &cpu);
	__u64 *k = bpf_map_lookup_elem(&perf_cookies, &cpu);
	if (c)
		__sync_fetch_and_add(c, 1);
	if (k)
		*k = bpf_get_attach_cookie(ctx);
	return 0;
}

SEC("tc")
int on_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *p = data;
	struct pkt_meta m = {};
	__u64 cap;

	if (data + 14 > end || p[12] != 0x88 || p[13] != 0xb5)  /* our test ethertype only */
		return 0;  /* TC_ACT_OK */
	cap = skb->len < 64 ? skb->len : 64;
	m.seq = __sync_fetch_and_add(&tc_seq, 1);
	m.ifindex = skb->ifindex;
	m.len = skb->len;
	m.ingress_ifindex = skb->ingress_ifindex;
	m.cap = cap;
	bpf_perf_event_output(skb, &tc_events, (cap << 32) | BPF_F_CURRENT_CPU, &m, sizeof(m));
	return 0;
}

SEC("xdp")
int on_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("cgroup/sock_create")
int on_sock_create(struct bpf_sock *sk)
{
	__sync_fetch_and_add(&sock_created, 1);
	return deny_sockets ? 0 : 1;
}

SEC("socket")
int on_socket(struct __sk_buff *skb)
{
	__u8 first = 0;
	bpf_skb_load_bytes(skb, 8, &first, 1);  /* UDP payload starts after the 8-byte header */
	__sync_fetch_and_add(&filtered, 1);
	return first == 'X' ? 0 : skb->len;  /* drop datagrams starting with X */
}

struct bpf_iter_meta { struct seq_file *seq; __u64 session_id; __u64 seq_num; }
    __attribute__((preserve_access_index));
struct task_struct { int pid; int tgid; } __attribute__((preserve_access_index));
struct bpf_iter__task { struct bpf_iter_meta *meta; struct task_struct *task; }
    __attribute__((preserve_access_index));
struct task_rec { __u32 pid; __u32 tgid; };
struct task_rec *unused_task_rec __attribute__((unused));

SEC("iter/task")
int on_task(struct bpf_iter__task *ctx)
{
	struct task_struct *t = ctx->task;
	struct task_rec r;

	if (!t)
		return 0;
	r.pid = t->pid;
	r.tgid = t->tgid;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

struct kernfs_node { __u64 id; } __attribute__((preserve_access_index));
struct cgroup { struct kernfs_node *kn; } __attribute__((preserve_access_index));
struct bpf_iter__cgroup { struct bpf_iter_meta *meta; struct cgroup *cgroup; }
    __attribute__((preserve_access_index));

SEC("iter/cgroup")
int on_cgroup(struct bpf_iter__cgroup *ctx)
{
	struct cgroup *cg = ctx->cgroup;
	__u64 id;

	if (!cg)
		return 0;
	id = cg->kn->id;
	bpf_seq_write(ctx->meta->seq, &id, sizeof(id));
	return 0;
}

SEC("tp/syscalls/sys_enter_getppid")
int auto_tp(void *ctx)
{
	if (ours())
		emit(7, 0, 0);
	return 0;
}

SEC("sk_lookup")
int on_sk_lookup(struct bpf_sk_lookup *ctx)
{
	return SK_PASS;
}

/* Last: its auto-attach fails (no such binary), for skel.attach()'s rollback. */
SEC("uprobe//nonexistent/btfgen-test:func")
int auto_fail(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

#: A target for uprobes and USDT: ``target N`` calls ``traced(i)`` and fires
#: ``btfgen_test:tick(i, N)`` N times, after waiting for a line on stdin (so the
#: test can attach to its pid first).
TARGET_SRC = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/sdt.h>

__attribute__((noinline)) long traced(long x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3 + 1;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1, sum = 0;
	char line[16];
	if (argc > 2 && !fgets(line, sizeof(line), stdin))
		return 2;
	for (long i = 0; i < n; i++) {
		sum += traced(i);
		DTRACE_PROBE2(btfgen_test, tick, i, n);
	}
	printf("%ld\n", sum);
	return 0;
}
"""


@dataclass
class Rec:
    """struct rec of ATTACH_SRC."""

    cookie: int
    value: int
    kind: int
    pid: int
    tid: int
    cpu: int

    SIZE = 32
    _S = struct.Struct("<QqIIII")

    @classmethod
    def from_bytes(cls, buf: Any, offset: int = 0) -> Rec:
        return cls(*cls._S.unpack_from(buf, offset))


@dataclass
class TaskRec:
    """struct task_rec of ATTACH_SRC (what the task iterator writes)."""

    pid: int
    tgid: int

    SIZE = 8

    @classmethod
    def from_bytes(cls, buf: Any, offset: int = 0) -> TaskRec:
        return cls(*struct.unpack_from("<II", buf, offset))


def build_attach_module(out: Path) -> ModuleType:
    """Compile ATTACH_SRC, generate ``attach_skel`` into ``out`` and import it."""
    obj = compile_bpf(ATTACH_SRC, out / "attach.bpf.o", cflags=CFLAGS)
    run_btfgen("gen", obj, "-o", out / "attach_skel.py", "--type", "struct task_rec",
               check=True)
    sys.path.insert(0, str(out))
    import importlib
    return importlib.import_module("attach_skel")


def build_target(out: Path) -> Path:
    """Compile TARGET_SRC (with its USDT probes) to ``out/target``."""
    src = out / "target.c"
    src.write_text(TARGET_SRC)
    exe = out / "target"
    r = subprocess.run(["cc", "-O1", "-g", "-o", str(exe), str(src)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    return exe


_built: dict[str, Any] = {}


def attach_module(factory: pytest.TempPathFactory) -> ModuleType:
    """The generated ``attach_skel`` module, built once per session."""
    if "mod" not in _built:
        _built["mod"] = build_attach_module(factory.mktemp("attach"))
    mod: ModuleType = _built["mod"]
    return mod


def target_binary(factory: pytest.TempPathFactory) -> Path:
    """The uprobe/USDT target, built once per session."""
    if "exe" not in _built:
        _built["exe"] = build_target(factory.mktemp("target"))
    exe: Path = _built["exe"]
    return exe


def open_skel(mod: ModuleType, **rodata: int) -> Any:
    """Open and load the attach skeleton (target_tgid = this process unless given)."""
    from tests.helpers.runtime_zoo import load_or_skip
    skel = mod.AttachSkel.open()
    try:
        skel.rodata.target_tgid = rodata.get("target_tgid", os.getpid())
        for name in ("auto_fail", "on_cgroup"):  # need a target
            getattr(skel.progs, name).autoattach = False
        load_or_skip(skel.load)
    except BaseException:
        skel.destroy()
        raise
    return skel


def drain(rb: Any, got: list[Any], want: int, timeout: float = 30.0) -> None:
    """Poll ``rb`` until ``got`` has ``want`` records (or ``timeout`` seconds,
    generous for a loaded machine, passed: the caller asserts)."""
    end = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < end:
        rb.poll(20)


def link_ids(fds: list[int]) -> set[int]:
    """The kernel ids of the links behind ``fds`` (from /proc/self/fdinfo)."""
    out = set()
    for fd in fds:
        for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
            if line.startswith("link_id:"):
                out.add(int(line.split()[1]))
    return out


@contextmanager
def netns_veth(tag: str, addrs: Sequence[str] = ()) -> Iterator[tuple[str, str, str]]:
    """A veth pair named after ``tag`` and this pid: ``here`` in this namespace, its
    peer in a new network namespace; ``addrs`` = (here's CIDR, peer's CIDR) if given.
    Skips the test when namespaces cannot be made."""
    pid = os.getpid()
    stem = f"bt{tag[0]}{pid % 100000}"  # interface names: 15 characters at most
    ns, here, there = f"btfgen-{tag}-{pid}", stem + "a", stem + "b"

    def ip(*args: str) -> None:
        r = subprocess.run(["ip", *args], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")

    try:
        ip("netns", "add", ns)
    except RuntimeError as e:
        pytest.skip(f"cannot create a network namespace here: {e}")
    try:
        ip("link", "add", here, "type", "veth", "peer", "name", there, "netns", ns)
        if addrs:
            ip("addr", "add", addrs[0], "dev", here)
            ip("-n", ns, "addr", "add", addrs[1], "dev", there)
        ip("link", "set", here, "up")
        ip("-n", ns, "link", "set", there, "up")
        yield ns, here, there
    finally:
        subprocess.run(["ip", "link", "del", here], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
