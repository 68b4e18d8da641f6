"""tc classifier attachment for ``Program.attach_tc`` through libbpf's
``bpf_tc_hook_create``/``bpf_tc_attach``/``bpf_tc_detach``.

The clsact qdisc is created when missing and removed again when the last
btfgen tc link on that interface that needed it is detached (a qdisc found
already there is never removed).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from typing import Any

from btfgen.runtime import _log
from btfgen.runtime._libbpf import ffi, lib, libc
from btfgen.runtime.link import DetachPart, Part
from btfgen.runtime.native import check_int
from btfgen.runtime.system import ifindex

ffi.cdef("""
struct bpf_tc_hook { size_t sz; int ifindex; int attach_point; uint32_t parent; };
struct bpf_tc_opts { size_t sz; int prog_fd; uint32_t flags; uint32_t prog_id;
                     uint32_t handle; uint32_t priority; };
int bpf_tc_hook_create(struct bpf_tc_hook *hook);
int bpf_tc_hook_destroy(struct bpf_tc_hook *hook);
int bpf_tc_attach(const struct bpf_tc_hook *hook, struct bpf_tc_opts *opts);
int bpf_tc_detach(const struct bpf_tc_hook *hook, const struct bpf_tc_opts *opts);
int setns(int fd, int nstype);
""")

BPF_TC_INGRESS, BPF_TC_EGRESS = 1, 2
DIRECTIONS = {"ingress": BPF_TC_INGRESS, "egress": BPF_TC_EGRESS}

_NETNS = "/proc/thread-self/ns/net"
_CLONE_NEWNET = 0x40000000

#: (netns inode, ifindex) -> [live tc links of this process on it, whether we made its clsact].
_users: dict[tuple[int, int], list[int]] = {}
_lock = threading.Lock()


def _hook(ifindex: int, point: int) -> Any:
    hook = ffi.new("struct bpf_tc_hook *")
    hook.sz = ffi.sizeof("struct bpf_tc_hook")
    hook.ifindex = ifindex
    hook.attach_point = point
    return hook


def _opts(prog_fd: int, handle: int, priority: int) -> Any:
    opts = ffi.new("struct bpf_tc_opts *")
    opts.sz = ffi.sizeof("struct bpf_tc_opts")
    opts.prog_fd = prog_fd
    opts.handle = handle
    opts.priority = priority
    return opts


def attach_tc(prog_name: str, prog_fd: int, interface: int | str, *, direction: str,
              priority: int, handle: int) -> tuple[Part, str]:
    """Attach ``prog_fd`` as a tc filter; the part that detaches it, and a description."""
    if direction not in DIRECTIONS:
        raise ValueError(f"attach_tc: direction must be 'ingress' or 'egress', not {direction!r}")
    idx = ifindex(interface)
    what = f"tc {direction} on {interface} (ifindex {idx}) handle {handle} priority {priority}"
    point = DIRECTIONS[direction]
    netns = os.open(_NETNS, os.O_RDONLY | os.O_CLOEXEC)  # detach talks to this namespace
    key = (os.fstat(netns).st_ino, idx)
    try:
        with _lock:
            with _log.demoted():  # "exists" is a warning to libbpf, fine for us
                rc = int(lib().bpf_tc_hook_create(_hook(idx, point)))
            if rc < 0 and rc != -errno.EEXIST:
                check_int(f"program {prog_name}: create clsact qdisc on ifindex {idx}",
                          lambda: rc)
            users = _users.setdefault(key, [0, 0])
            if rc == 0:
                users[1] = 1  # we created it
            users[0] += 1
        try:
            check_int(f"program {prog_name}: attach {what}",
                      lambda: lib().bpf_tc_attach(_hook(idx, point),
                                                  _opts(prog_fd, handle, priority)))
        except BaseException:
            _release(key)
            raise
    except BaseException:
        os.close(netns)
        raise

    def detach() -> None:
        def in_netns() -> None:
            # prog_fd/id/flags must be 0 on detach: handle and priority name the filter
            lib().bpf_tc_detach(_hook(idx, point), _opts(0, handle, priority))
            _release(key)

        try:
            _in_netns(netns, in_netns)
        finally:
            os.close(netns)

    return DetachPart(detach), what


def _in_netns(fd: int, call: Callable[[], None]) -> None:
    """Run ``call`` in the network namespace ``fd`` (this thread), then come back."""
    if os.fstat(fd).st_ino == os.stat(_NETNS).st_ino:
        call()
        return
    back = os.open(_NETNS, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc().setns(fd, _CLONE_NEWNET) != 0:
            return  # cannot enter it: nothing to detach from here
        try:
            call()
        finally:
            libc().setns(back, _CLONE_NEWNET)
    finally:
        os.close(back)


def _release(key: tuple[int, int]) -> None:
    """One tc link on ``key`` fewer; the last one removes the clsact we created."""
    with _lock:
        users = _users.get(key)
        if users is None:
            return
        users[0] -= 1
        if users[0] > 0:
            return
        del _users[key]
        if users[1]:
            lib().bpf_tc_hook_destroy(_hook(key[1], BPF_TC_INGRESS | BPF_TC_EGRESS))
