"""What a process holds in the kernel, for leak checks: the ids of BPF programs,
maps and links behind its fds, and which of them the kernel still has.

Imported by the tests and by the scripts they run in fresh interpreters
(those put the checkout on ``sys.path``), so it needs nothing but the stdlib.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

KINDS = ("prog", "map", "link")


def fd_ids() -> dict[str, set[int]]:
    """BPF object ids behind this process's fds, from /proc/self/fdinfo."""
    ids: dict[str, set[int]] = {f"{k}_id": set() for k in KINDS}
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                text = f.read()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, val = line.partition(":")
            if key in ids:
                ids[key].add(int(val))
    return ids


def bpftool_ids(kind: str) -> set[int]:
    """Ids of every ``kind`` ("prog", "map", "link") the kernel has, per bpftool."""
    out = subprocess.run(["bpftool", kind, "list", "-j"], capture_output=True, text=True,
                         check=True).stdout
    return {e["id"] for e in json.loads(out or "[]")}


def still_alive(ids: dict[str, set[int]]) -> dict[str, list[int]]:
    """Which of ``ids`` (as from :func:`fd_ids`) the kernel still has, after
    allowing it a moment: it frees maps after an RCU grace period."""
    end = time.monotonic() + 30  # RCU and the kernel's workqueue lag under load
    while True:
        left = {k: sorted(ids[f"{k}_id"] & bpftool_ids(k)) for k in KINDS}
        if not any(left.values()):
            return {}
        if time.monotonic() > end:
            return left
        time.sleep(0.05)
