"""After destroy(), every map operation added for queue/stack/bloom, stack traces, fd maps
and pinning raises a clear error instead of touching freed libbpf memory (run in a child
under MALLOC_PERTURB_ and faulthandler: a crash fails the test)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.maps_zoo import build, session_pin_root

pytestmark = pytest.mark.live

CHILD = r"""
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("maps_zoo_child", sys.argv[1])
mod = importlib.util.module_from_spec(spec); sys.modules[spec.name] = mod
spec.loader.exec_module(mod)
from btfgen.runtime.errors import BpfPermissionError, RuntimeBpfError
skel = mod.MapsZooSkel.open(pin_root=sys.argv[2])
try:
    skel.load()
except BpfPermissionError as e:
    print(json.dumps({"skip": str(e)})); sys.exit(0)
m, p = skel.maps, skel.progs
skel.destroy()
calls = {
    "push": lambda: m.fifo.push(1), "pop": lambda: m.lifo.pop(), "peek": lambda: m.fifo.peek(),
    "bloom_in": lambda: 1 in m.seen, "stack": lambda: m.stacks.lookup(0),
    "stack_size": lambda: setattr(m.stacks, "value_size", 64),
    "jmp_set": lambda: m.jmp.update(0, p.tail_target), "jmp_id": lambda: m.jmp.lookup_id(0),
    "outer": lambda: m.outer.lookup(0), "clear": lambda: m.arr.clear(),
    "pcpu_clear": lambda: m.pcpu.clear(), "batch": lambda: m.counts.lookup_batch(4),
    "pin": lambda: m.arr.pin("/sys/fs/bpf/x"), "unpin": lambda: m.shared.unpin(),
    "pin_path": lambda: m.shared.pin_path, "set_pin_path": lambda: setattr(m.arr, "pin_path", "/x"),
    "pinned": lambda: m.shared.pinned, "reuse": lambda: m.arr.reuse_pinned("/sys/fs/bpf/x"),
    "id": lambda: m.arr.id, "items": lambda: list(m.counts.items()), "handle": lambda: m.arr.handle,
}
out = {}
for name, call in calls.items():
    try:
        call()
        out[name] = "no error"
    except RuntimeBpfError as e:
        out[name] = str(e)
print(json.dumps(out))
"""


def test_use_after_destroy_raises_and_never_crashes() -> None:
    mod = build()
    env = {**os.environ, "MALLOC_PERTURB_": "165"}
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", CHILD,
                        str(Path(mod.__file__ or "")), session_pin_root()],
                       capture_output=True, text=True,
                       env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    if "skip" in out:
        pytest.skip(f"the kernel refuses BPF here: {out['skip']}")
    assert out and all(msg.startswith("BPF object maps_zoo is closed") for msg in out.values()), out
