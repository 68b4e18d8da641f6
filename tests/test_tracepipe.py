"""trace_pipe(): bpf_printk lines parsed, a private tracefs instance, clean close."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from btfgen.runtime import trace_pipe
from btfgen.runtime.bpfobj import LibbpfObject
from btfgen.runtime.tracepipe import TraceLine, parse_line
from tests.helpers.build import compile_bpf
from tests.helpers.runtime_zoo import load_or_skip

PRINTK_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
const volatile __u32 targ_tgid = 0;
SEC("tp/syscalls/sys_enter_getppid")
int say(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	if ((id >> 32) != targ_tgid)
		return 0;
	bpf_printk("btfgen-marker tid=%d n=%d", (__u32)id, 42);
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def test_parse_shapes() -> None:
    line = parse_line("           <...>-12345   [001] d..31  1234.567890: bpf_trace_printk: "
                      "hello: world")
    assert line == TraceLine("<...>", 12345, 1, "d..31", 1234.56789, "bpf_trace_printk",
                             "hello: world", line.raw if line else "")
    # comm with spaces and dashes, a tgid column, no flags column
    line = parse_line(" my task-x-7 ( 7) [000] 5.000001: bpf_trace_printk: a")
    assert line is not None and (line.task, line.pid, line.cpu, line.flags, line.message) == (
        "my task-x", 7, 0, "", "a")
    assert parse_line("CPU:1 [LOST 3 EVENTS]") is None


def _load(tmp_path: Path) -> LibbpfObject:
    data = compile_bpf(PRINTK_SRC, tmp_path / "printk.bpf.o").read_bytes()

    def load() -> LibbpfObject:
        o = LibbpfObject(data, "printk")
        rodata = o.find_map(".rodata")
        assert rodata is not None
        from btfgen.runtime._libbpf import ffi, lib
        size = ffi.new("size_t *")
        buf = lib().bpf_map__initial_value(rodata.ptr, size)
        ffi.cast("unsigned int *", buf)[0] = os.getpid()
        o.load()
        return o

    return load_or_skip(load)


@pytest.mark.live
def test_printk_lines_from_private_instance(tmp_path: Path) -> None:
    o = _load(tmp_path)
    name = f"btfgen-test-{os.getpid()}"
    try:
        with trace_pipe(instance=name) as pipe:
            assert os.path.isdir(f"/sys/kernel/tracing/instances/{name}")
            o.attach()
            for _ in range(3):
                os.getppid()
            got = []
            while len(got) < 3:
                line = pipe.read(timeout=5.0)
                assert line is not None, f"only {len(got)} of 3 lines within 5 s"
                if line.message.startswith("btfgen-marker"):
                    got.append(line)
            assert pipe.read(timeout=0.2) is None
        assert not os.path.exists(f"/sys/kernel/tracing/instances/{name}")
        assert pipe.closed and pipe.read(timeout=0) is None
    finally:
        o.close()
    me = threading.get_native_id()
    assert [g.message for g in got] == [f"btfgen-marker tid={me} n=42"] * 3
    assert all(g.pid == me and g.event == "bpf_trace_printk" for g in got)
    assert got[0].timestamp <= got[1].timestamp <= got[2].timestamp
    assert abs(got[0].timestamp - time.clock_gettime(time.CLOCK_MONOTONIC)) < 60
    # the kernel prints "<...>" for a pid whose comm its saved_cmdlines cache lacks
    assert got[0].task in ("<...>", Path("/proc/self/comm").read_text().strip())


@pytest.mark.live
def test_blocked_iteration_ends_on_interrupt_without_threads(tmp_path: Path) -> None:
    # A child blocks iterating an idle private pipe; SIGINT ends it at once, and
    # the instance is gone afterwards.
    name = f"btfgen-idle-{os.getpid()}"
    code = (
        "import sys, threading\n"
        "from btfgen.runtime import trace_pipe\n"
        f"p = trace_pipe(instance={name!r})\n"
        "try:\n"
        "    print('ready', flush=True)\n"
        "    for line in p: pass\n"
        "except KeyboardInterrupt:\n"
        "    p.close(); print('threads', threading.active_count(), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "-c", code],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    t = time.monotonic()
    proc.send_signal(2)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and out.strip() == "threads 1"
    assert time.monotonic() - t < 2
    assert not os.path.exists(f"/sys/kernel/tracing/instances/{name}")


def test_bad_instance_name() -> None:
    with pytest.raises(ValueError, match="not a plain name"):
        trace_pipe(instance="../x")


@pytest.mark.live
def test_close_from_another_thread_ends_a_blocked_read() -> None:
    name = f"btfgen-close-{os.getpid()}"
    pipe = trace_pipe(instance=name)
    got: list[object] = []
    reader = threading.Thread(target=lambda: got.extend(pipe))  # blocks: nothing printed
    reader.start()
    time.sleep(0.3)
    t = time.monotonic()
    pipe.close()
    reader.join(timeout=5)
    assert not reader.is_alive() and time.monotonic() - t < 1.0
    assert got == [] and pipe.closed
    for _ in range(50):  # the reader removes the instance as it lets go of the fd
        if not os.path.exists(f"/sys/kernel/tracing/instances/{name}"):
            break
        time.sleep(0.02)
    assert not os.path.exists(f"/sys/kernel/tracing/instances/{name}")
