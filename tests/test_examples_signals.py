"""Ctrl-C on an example tracer: it stops cleanly and its BPF objects are gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.build import ROOT

pytestmark = pytest.mark.live

EXAMPLES = ROOT / "examples"


def bpftool_prog_names() -> list[str]:
    out = subprocess.run(["bpftool", "prog", "list", "-j"], capture_output=True, text=True,
                         check=True).stdout
    return [p.get("name", "") for p in json.loads(out or "[]")]


def test_ctrl_c_stops_the_tracer_and_frees_everything() -> None:
    subprocess.run(["make", "-s", "-C", str(EXAMPLES)], check=True, capture_output=True)
    p = subprocess.Popen([sys.executable, str(EXAMPLES / "opensnoop.py"), "-p",
                          str(os.getpid())], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    assert p.stdout.readline().startswith("  SEQ")  # printed once attached
    assert "exit_openat" in bpftool_prog_names()
    os.close(os.open("/dev/null", os.O_RDONLY))
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert "/dev/null" in out
    assert "events, 0 opens in flight, lost 0" in err
    assert "Traceback" not in err
    names = bpftool_prog_names()
    assert "exit_openat" not in names and "enter_openat" not in names
