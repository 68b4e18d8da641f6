"""Lifetimes of everything wrapping libbpf memory: use after destroy() raises
(never touches freed memory), a dropped skeleton detaches at once and at
interpreter exit, and a forked child never detaches its parent's attachments.

Use-after-destroy runs in a fresh interpreter under ``-X faulthandler`` with
``MALLOC_PERTURB_=165`` (freed memory is overwritten): a crash fails the test.
"""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.attach_progs import attach_module, link_ids, open_skel, target_binary
from tests.helpers.bpf_leaks import bpftool_ids
from tests.helpers.build import ROOT

pytestmark = pytest.mark.live
PID = os.getpid()


@pytest.fixture(scope="module")
def attach_mod(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return attach_module(tmp_path_factory)


def run_script(code: str, mod: ModuleType, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (faulthandler on, freed memory perturbed)
    with the attach skeleton importable."""
    env = dict(os.environ, MALLOC_PERTURB_="165",
               PYTHONPATH=os.pathsep.join([str(Path(mod.__file__ or "").parent),
                                           str(ROOT / "tests"), str(ROOT)]))
    return subprocess.run([sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(code),
                           *args], capture_output=True, text=True, env=env, timeout=120)


USE_AFTER_DESTROY = """
import json, os, socket, sys
from attach_skel import AttachSkel, Rec
from btfgen.runtime.errors import RuntimeBpfError

skel = AttachSkel.open()
skel.rodata.target_tgid = os.getpid()
skel.progs.auto_fail.autoattach = False
skel.load()
prog, tp = skel.progs.on_uprobe, skel.progs.on_tp
arr, rb, events = skel.maps.perf_counts, skel.maps.rb, skel.maps.tc_events
link = tp.attach_tracepoint("syscalls", "sys_enter_getppid")
ring = rb.with_record(Rec).open_ring_buffer(lambda r: None)
perf = events.open_perf_buffer(lambda cpu, r: None)
it = skel.progs.on_task.attach_iter()
handle = skel.obj.maps["perf_counts"]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
skel.destroy()

def setattr_(obj, name, value):
    return lambda: setattr(obj, name, value)

calls = {
    "prog.fd": lambda: prog.fd,
    "prog.handle": lambda: prog.handle,
    "prog.autoload": lambda: prog.autoload,
    "prog.autoload=": setattr_(prog, "autoload", False),
    "prog.autoattach": lambda: prog.autoattach,
    "prog.autoattach=": setattr_(prog, "autoattach", False),
    "prog.type": lambda: prog.type,
    "prog.type=": setattr_(prog, "type", 2),
    "prog.expected_attach_type": lambda: prog.expected_attach_type,
    "prog.expected_attach_type=": setattr_(prog, "expected_attach_type", 1),
    "prog.log_level": lambda: prog.log_level,
    "prog.log_level=": setattr_(prog, "log_level", 2),
    "prog.set_attach_target": lambda: prog.set_attach_target("do_nanosleep"),
    "prog.attach": lambda: tp.attach(),
    "prog.attach_uprobe": lambda: prog.attach_uprobe("libc.so.6", "getpid"),
    "prog.attach_usdt": lambda: prog.attach_usdt(sys.argv[1], "btfgen_test", "tick"),
    "prog.attach_kprobe": lambda: prog.attach_kprobe("do_nanosleep"),
    "prog.attach_kprobe_multi": lambda: prog.attach_kprobe_multi("do_*"),
    "prog.attach_tracepoint": lambda: tp.attach_tracepoint("syscalls", "sys_enter_getppid"),
    "prog.attach_raw_tracepoint": lambda: tp.attach_raw_tracepoint("sys_enter"),
    "prog.attach_perf_event": lambda: skel.progs.on_perf.attach_perf_event(),
    "prog.attach_tc": lambda: skel.progs.on_tc.attach_tc("lo"),
    "prog.attach_xdp": lambda: skel.progs.on_xdp.attach_xdp("lo"),
    "prog.attach_cgroup": lambda: skel.progs.on_sock_create.attach_cgroup("/sys/fs/cgroup"),
    "prog.attach_netns": lambda: skel.progs.on_sk_lookup.attach_netns(),
    "prog.attach_socket": lambda: skel.progs.on_socket.attach_socket(sock),
    "prog.attach_iter": lambda: skel.progs.on_task.attach_iter(),
    "map.fd": lambda: arr.fd,
    "map.max_entries": lambda: arr.max_entries,
    "map.max_entries=": setattr_(arr, "max_entries", 8),
    "map.key_size": lambda: arr.key_size,
    "map.value_size": lambda: arr.value_size,
    "map.map_flags": lambda: handle.map_flags,
    "map.handle": lambda: handle.handle,
    "map.value_size=": setattr_(handle, "value_size", 16),
    "len(array_map)": lambda: len(arr),
    "array_map[0]": lambda: arr[0],
    "array_map[0]=": lambda: arr.__setitem__(0, 1),
    "list(array_map)": lambda: list(arr.items()),
    "open_ring_buffer": lambda: rb.open_ring_buffer(lambda r: None),
    "rodata.target_tgid": lambda: skel.rodata.target_tgid,
    "bss.tc_seq": lambda: skel.bss.tc_seq,
    "bss.tc_seq=": setattr_(skel.bss, "tc_seq", 3),
    "skel.handle": lambda: skel.handle,
    "skel.load": lambda: skel.load(),
    "skel.attach": lambda: skel.attach(),
    "link.pin": lambda: link.pin("/sys/fs/bpf/btfgen-never"),
    "link.handle": lambda: link.handle,
    "link.read": lambda: it.read(),
    "ring.poll": lambda: ring.poll(0),
    "perf.poll": lambda: perf.poll(0),
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = "no error"
    except Exception as e:
        out[name] = f"{type(e).__name__}: {e}"
out["link.fd"] = link.fd
out["link.alive"] = link.alive
link.destroy(); skel.destroy(); skel.detach()
print(json.dumps(out))
"""


def test_every_public_handle_after_destroy_raises(attach_mod: ModuleType,
                                                  tmp_path_factory: pytest.TempPathFactory
                                                  ) -> None:
    exe = target_binary(tmp_path_factory)
    r = run_script(USE_AFTER_DESTROY, attach_mod, str(exe))
    assert r.returncode == 0, f"crashed or failed ({r.returncode}):\n{r.stderr[-3000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out.pop("link.fd") == -1 and out.pop("link.alive") is False
    buffers = {k: out.pop(k) for k in ("ring.poll", "perf.poll")}
    for name, result in buffers.items():  # the readers' own closed errors
        assert "closed" in result, (name, result)
    wrong = {k: v for k, v in out.items() if not (
        v.startswith("RuntimeBpfError: BPF object attach is closed") or
        (k == "link.pin" or k == "link.handle" or k == "link.read") and "destroyed" in v)}
    assert wrong == {}


def test_dropped_skeleton_detaches_when_its_last_reference_goes(attach_mod: ModuleType) -> None:
    gc.disable()  # no collector run may help: reference counting alone must do it
    try:
        skel = open_skel(attach_mod)
        link = skel.progs.auto_tp.attach_tracepoint("syscalls", "sys_enter_getppid")
        arr = skel.maps.perf_counts
        fds = [link.fd, skel.progs.auto_tp.fd, arr.fd]
        ids = link_ids(fds[:1])
        assert ids and ids <= bpftool_ids("link")
        del skel
        assert not ids & bpftool_ids("link")  # detached at once
        assert not link.alive and link.fd == -1
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)
        with pytest.raises(Exception, match="is closed"):
            arr[0]
    finally:
        gc.enable()


EXIT_WITHOUT_DESTROY = """
import os, sys
from attach_skel import AttachSkel
skel = AttachSkel.open()
skel.progs.auto_fail.autoattach = False
skel.load()
skel.progs.on_tc.attach_tc(sys.argv[1], direction="egress")
link = skel.progs.auto_tp.attach_tracepoint("syscalls", "sys_enter_getppid")
print(open(f"/proc/self/fdinfo/{link.fd}").read().split("link_id:")[1].split()[0], flush=True)
if sys.argv[2] == "fork":
    pid = os.fork()
    if pid == 0:  # the child destroys its copy and exits through the finalizers
        skel.destroy()
        sys.exit(0)
    os.waitpid(pid, 0)
    os.system(f"tc filter show dev {sys.argv[1]} egress")
    sys.stdout.flush()
# no destroy(): interpreter exit must detach the tc filter (netlink state outlives fds)
"""


def tc_filters(ifname: str) -> str:
    return subprocess.run(["tc", "filter", "show", "dev", ifname, "egress"], capture_output=True,
                          text=True, check=True).stdout


@pytest.mark.parametrize("fork", ["nofork", "fork"])
def test_interpreter_exit_detaches_and_a_child_never_does(attach_mod: ModuleType,
                                                          fork: str) -> None:
    ifname = f"btl{PID % 100000}{fork[0]}"
    subprocess.run(["ip", "link", "add", ifname, "type", "veth", "peer", "name", ifname + "p"],
                   check=True)
    try:
        r = run_script(EXIT_WITHOUT_DESTROY, attach_mod, ifname, fork)
        assert r.returncode == 0, r.stderr[-3000:]
        lines = r.stdout.splitlines()
        if fork == "fork":  # after the child destroyed and exited, the parent's filter stands
            assert "on_tc" in "".join(lines[1:])
        assert "on_tc" not in tc_filters(ifname)
        assert "clsact" not in subprocess.run(["tc", "qdisc", "show", "dev", ifname],
                                              capture_output=True, text=True).stdout
        assert int(lines[0]) not in bpftool_ids("link")
    finally:
        subprocess.run(["ip", "link", "del", ifname], capture_output=True)


def test_link_kept_by_the_user_stays_valid_until_the_skeleton_goes(attach_mod: ModuleType
                                                                   ) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with open_skel(attach_mod) as skel:
            link = skel.progs.on_socket.attach_socket(rx)
            prog = skel.progs.on_socket
            assert link.program is prog and skel.links.on_socket == [link]
        assert not link.alive and prog.links == []
        link.destroy()  # idempotent after the skeleton freed it
    finally:
        rx.close()


RACE = """
import threading
from attach_skel import AttachSkel
for _ in range(8):
    skel = AttachSkel.open()
    skel.progs.auto_fail.autoattach = False
    skel.load()
    links = [skel.progs.on_tp.attach_tracepoint("syscalls", f"sys_enter_{name}")
             for name in ("getppid", "getpid", "gettid", "getuid", "geteuid", "getgid",
                          "getegid", "sched_yield")]
    links.append(skel.progs.on_perf.attach_perf_event(freq=100))
    start = threading.Barrier(4)

    def destroy_all():
        start.wait()
        for link in links:
            link.destroy()
        skel.destroy()

    threads = [threading.Thread(target=destroy_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not any(link.alive for link in links) and skel.obj.closed
print("ok")
"""


def test_concurrent_destroy_frees_each_thing_once(attach_mod: ModuleType) -> None:
    r = run_script(RACE, attach_mod)
    assert (r.returncode, r.stdout.strip()) == (0, "ok"), r.stderr[-3000:]
