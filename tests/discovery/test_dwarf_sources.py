"""Record types from DWARF as normal builds produce it.

* locals of ``__always_inline`` helpers (libbpf-tools' opensnoop and tcpconnect
  fill ``struct event`` that way): the inlined copy names its abstract origin;
* headers whose directory DWARF records relative to the compile directory
  (``cd project && clang -Iinclude -c src/tool.bpf.c``, as Makefiles do);

both clang versions, both byte orders, DWARF 4 and 5; and live, the records of the
generated module carry what the program wrote.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from btfgen.discovery.resolve import resolve_event_types
from btfgen.dump.info import c_type_name
from btfgen.elf.reader import read_input
from tests.helpers.build import MULTIARCH_INCLUDE, ROOT
from tests.helpers.gen import generate
from tests.helpers.runtime_zoo import load_or_skip

EV_H = "struct event { unsigned int pid; unsigned long long ts; char comm[16]; };\n"
OTHER_H = "struct other { int a; int b; long long c; long long d; };\n"
TOOL = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ev.h"
#include "other.h"
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } others SEC(".maps");

static __always_inline int emit(void *ctx)
{
    struct event event = {};
    event.pid = bpf_get_current_pid_tgid() >> 32;
    event.ts = 42;
    bpf_get_current_comm(event.comm, sizeof(event.comm));
    bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &event, sizeof(event));
    return 0;
}

static __always_inline int emit2(void)
{
    struct other *o = bpf_ringbuf_reserve(&others, sizeof(*o), 0);
    if (!o)
        return 0;
    o->a = bpf_get_current_pid_tgid() >> 32;
    o->b = 7;
    o->c = 8;
    o->d = 9;
    bpf_ringbuf_submit(o, 0);
    return 0;
}

int target_pid;  /* other processes' getppid() must not fill the buffers */

SEC("tracepoint/syscalls/sys_enter_getppid")
int handle(void *ctx)
{
    if ((bpf_get_current_pid_tgid() >> 32) != target_pid)
        return 0;
    emit(ctx);
    return emit2();
}
"""


def build(tmp_path: Path, clang: str = "clang", target: str = "bpf", dwarf: int = 5) -> Path:
    """``cd project && clang ... -Iinclude -c src/tool.bpf.c``: relative directories."""
    proj = tmp_path / f"proj_{clang}_{target}_{dwarf}"
    (proj / "src").mkdir(parents=True)
    (proj / "include").mkdir()
    (proj / "src" / "ev.h").write_text(EV_H)
    (proj / "include" / "other.h").write_text(OTHER_H)
    (proj / "src" / "tool.bpf.c").write_text(TOOL)
    cmd = [clang, "-g", f"-gdwarf-{dwarf}", "-O2", "-target", target, "-I", MULTIARCH_INCLUDE,
           "-I", str(ROOT / "btfgen" / "include"), "-Iinclude", "-c", "src/tool.bpf.c",
           "-o", "tool.bpf.o"]
    subprocess.run(cmd, cwd=proj, check=True, capture_output=True)
    return proj / "tool.bpf.o"


def records(obj: Path) -> dict[str, tuple[str, str]]:
    et = resolve_event_types(read_input(str(obj)))
    return {name: (c_type_name(et.btf, rec.type_id) if rec.type_id else "", rec.source)
            for name, rec in et.maps.items()}


@pytest.mark.parametrize("clang", ["clang", "clang-19"])
@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
@pytest.mark.parametrize("dwarf", [4, 5])
def test_inlined_locals_and_relative_headers(tmp_path: Path, clang: str, target: str,
                                             dwarf: int) -> None:
    got = records(build(tmp_path, clang, target, dwarf))
    assert got == {"events": ("struct event", "dwarf"), "others": ("struct other", "dwarf")}


def test_inlined_local_named_by_its_abstract_origin(tmp_path: Path) -> None:
    from btfgen.discovery.dwarf import DwarfTypes, c_name

    dwarf = DwarfTypes(build(tmp_path).read_bytes())
    assert "event" in {v.name for v in dwarf.locals_of("handle")}  # on the stack
    assert "o" in {c_name(d) for d in dwarf.variables["handle"]}   # in a register
    assert {"struct event", "struct other"} <= {c_name(s) for s in dwarf.structs}


@pytest.mark.live
def test_inlined_records_live(tmp_path: Path) -> None:
    mod = generate(build(tmp_path), tmp_path / "tool_skel.py", name="tool")
    skel = mod.ToolSkel.open()
    pid = os.getpid()
    skel.bss.target_pid = pid
    load_or_skip(skel.load)
    evs: list[Any] = []
    others: list[Any] = []
    try:
        skel.attach()
        pb = skel.maps.events.open_perf_buffer(
            lambda cpu, r: evs.append(r) if r.pid == pid else None)
        rb = skel.maps.others.open_ring_buffer(
            lambda r: others.append(r) if r.a == pid else None)
        for _ in range(4):
            os.getppid()
        deadline = time.monotonic() + 5
        while (len(evs) < 4 or len(others) < 4) and time.monotonic() < deadline:
            pb.poll(20)
            rb.poll(20)
        pb.close()
        rb.close()
    finally:
        skel.destroy()
    assert len(evs) >= 4 and len(others) >= 4
    assert all(type(r).__name__ == "Event" and r.ts == 42 for r in evs)
    assert evs[0].comm == Path("/proc/self/comm").read_bytes().strip()[:15]
    assert all((r.b, r.c, r.d) == (7, 8, 9) for r in others)
