"""The ported tools (examples/tools), live, beside Debian's libbpf-tools binaries.

Each tool and its C twin run at the same time on one workload process (both
filtered to its pid, so other engineers' activity on the machine does not count);
the workload starts only after both have attached and said so, and both stop
after it has finished.  Then:

* opensnoop, tcplife: every event appears in both outputs -- exact agreement
  (apart from times), because each tool sees every event of the workload once;
* runqlat: the total counts agree within 2% (+2): both count the same scheduler
  events of the workload, but each takes its own timestamps, and an event whose
  enqueue the one tool saw just before the other attached (or not) can differ at
  the edges; the bucket labels must be identical.

profile has no C twin in Debian's libbpf-tools: it is checked against a test
program built here with known function names (and a shared library), and on a
syscall-heavy workload whose kernel stacks must show the syscall's entry path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.build import ROOT

TOOLS = ROOT / "examples" / "tools"
PY = sys.executable

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def tools() -> Path:
    r = subprocess.run(["make", "-s", "-C", str(TOOLS), f"PYTHON={PY}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return TOOLS


class Proc:
    """A tool run with line-buffered output we can wait on."""

    def __init__(self, argv: list[str]) -> None:
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, bufsize=1)
        self.lines: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        assert self.p.stdout is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self.p.stdout.readline()
            if not line:
                err = self.p.stderr.read() if self.p.stderr else ""
                pytest.fail(f"{self.argv[0]} ended before printing {pattern!r}: {err}")
            self.lines.append(line.rstrip("\n"))
            if re.search(pattern, line):
                return
        pytest.fail(f"{self.argv} did not print {pattern!r} within {timeout} s")

    def stop(self) -> list[str]:
        self.p.send_signal(signal.SIGINT)
        out, err = self.p.communicate(timeout=60)
        assert self.p.returncode == 0, f"{self.argv}: exit {self.p.returncode}: {err}"
        self.lines += out.splitlines()
        return self.lines


def c_tool(name: str) -> list[str]:
    path = f"/usr/sbin/{name}"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} missing: install libbpf-tools (make system-deps)")
    stdbuf = shutil.which("stdbuf")
    assert stdbuf, "stdbuf (coreutils) is needed to read the C tool line by line"
    return [stdbuf, "-oL", path]


def py_tool(tools: Path, name: str) -> list[str]:
    return [PY, "-u", str(tools / f"{name}.py")]


class Workload:
    """A Python child that runs CODE once it reads a line on stdin, then waits."""

    def __init__(self, code: str) -> None:
        body = "import sys\nsys.stdin.readline()\n" + code + \
            "\nprint('done', flush=True)\nsys.stdin.readline()\n"
        self.p = subprocess.Popen([PY, "-c", body], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid

    def run(self, timeout: float = 60) -> None:
        assert self.p.stdin is not None and self.p.stdout is not None
        self.p.stdin.write("go\n")
        self.p.stdin.flush()
        assert self.p.stdout.readline().strip() == "done"

    def close(self) -> None:
        if self.p.stdin is not None:
            self.p.stdin.close()
        self.p.wait(timeout=30)


@pytest.fixture
def workload_factory() -> Iterator[type[Workload]]:
    made: list[Workload] = []

    class W(Workload):
        def __init__(self, code: str) -> None:
            super().__init__(code)
            made.append(self)

    yield W
    for w in made:
        w.close()


def side_by_side(c_argv: list[str], py_argv: list[str], ready: str, w: Workload,
                 settle: float = 0.5) -> tuple[list[str], list[str]]:
    c = Proc(c_argv)
    py = Proc(py_argv)
    try:
        c.wait_for(ready)
        py.wait_for(ready)
        w.run()
        time.sleep(settle)
        return c.stop(), py.stop()
    finally:
        for p in (c, py):
            if p.p.poll() is None:
                p.p.kill()
                p.p.wait()


OPENS = """
import os
for i in range(150):
    for path in ('/etc/hostname', '/nonexistent/btfgen-%d' % i):
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError:
            pass
"""

#: The workload's own opens (the interpreter's start-up opens may be seen by one tool only).
MINE = r" (/etc/hostname|/nonexistent/btfgen-\d+)$"


def test_opensnoop_matches_c(tools: Path, workload_factory: type[Workload]) -> None:
    w = workload_factory(OPENS)
    c, py = side_by_side(c_tool("opensnoop") + ["-p", str(w.pid)],
                         py_tool(tools, "opensnoop") + ["-p", str(w.pid)], r"PATH", w)
    assert c[0] == py[0] == "PID    COMM              FD ERR PATH"
    ours = Counter(line for line in py[1:] if re.search(MINE, line))
    theirs = Counter(line for line in c[1:] if re.search(MINE, line))
    assert sum(ours.values()) == 300
    assert ours == theirs
    assert f"{w.pid:<6d} python            -1   2 /nonexistent/btfgen-7" in ours


def test_opensnoop_flags_match_c(tools: Path, workload_factory: type[Workload]) -> None:
    w = workload_factory(OPENS)
    flags = ["-x", "-e", "-U", "-n", "pyth", "-p", str(w.pid)]
    c, py = side_by_side(c_tool("opensnoop") + flags, py_tool(tools, "opensnoop") + flags,
                         r"PATH", w)
    assert c[0] == py[0]
    ours = [line for line in py[1:] if re.search(MINE, line)]
    assert Counter(ours) == Counter(line for line in c[1:] if re.search(MINE, line))
    assert len(ours) == 150 and all(" -1   2 02000000 /nonexistent" in line for line in ours)


# The short sleep makes each message a wakeup whatever the load: the echo thread is
# blocked in read() when the byte comes (else it may find it there already).
RUNQ = """
import os, threading, time
r1, w1 = os.pipe(); r2, w2 = os.pipe()
def echo():
    for _ in range(1500):
        os.write(w2, os.read(r1, 1))
t = threading.Thread(target=echo); t.start()
for _ in range(1500):
    time.sleep(0.0002); os.write(w1, b'x'); os.read(r2, 1)
t.join()
"""

HIST_ROW = re.compile(r"^\s+(\d+) -> (\d+)\s+: (\d+)\s+\|")


def hist_rows(lines: list[str]) -> list[tuple[int, int, int]]:
    return [(int(m[1]), int(m[2]), int(m[3])) for m in map(HIST_ROW.match, lines) if m]


@pytest.mark.parametrize("extra", [[], ["-P"], ["-L", "-m"], ["--pidnss"]])
def test_runqlat_matches_c(tools: Path, workload_factory: type[Workload],
                           extra: list[str]) -> None:
    w = workload_factory(RUNQ)
    args = [*extra, "-p", str(w.pid)]
    c, py = side_by_side(c_tool("runqlat") + args, py_tool(tools, "runqlat") + args,
                         r"Tracing run queue latency", w)
    c_rows, py_rows = hist_rows(c), hist_rows(py)
    c_total, py_total = sum(r[2] for r in c_rows), sum(r[2] for r in py_rows)
    assert py_total >= 2000, py  # ~one wakeup per message (3000), fewer if already awake
    print(f"runqlat {extra}: C {c_total}, btfgen {py_total}")
    assert abs(c_total - py_total) <= 0.02 * c_total + 2, (c, py)
    units = "msecs" if "-m" in extra else "usecs"
    assert f"     {units}               : count    distribution" in py
    labels = {(0 if i == 0 else 1 << i, (2 << i) - 1) for i in range(26)}  # libbpf slots
    assert py_rows and all(r[:2] in labels for r in py_rows)
    heads = ("pid = ", "tid = ", "pidns = ")
    sections = sorted(line for line in py if line.startswith(heads))
    assert sections == sorted(line for line in c if line.startswith(heads))
    if "-P" in extra:
        assert sections == [f"pid = {w.pid} python"]
    if "-L" in extra:  # the main thread and the echo thread
        assert len(sections) == 2 and f"tid = {w.pid} python" in sections
    if "--pidnss" in extra:
        inum = os.stat(f"/proc/{w.pid}/ns/pid").st_ino
        assert sections == [f"pidns = {inum} python"]


CGROUP2 = Path("/sys/fs/cgroup/unified")


def test_runqlat_cgroup_filter_matches_c(tools: Path, workload_factory: type[Workload]) -> None:
    base = CGROUP2 if (CGROUP2 / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    if not (base / "cgroup.controllers").exists() and not (base / "cgroup.procs").exists():
        pytest.skip("no cgroup v2 hierarchy mounted (runqlat -c needs one)")
    cg = base / f"btfgen-runqlat-{os.getpid()}"
    cg.mkdir()
    w = workload_factory(RUNQ)
    try:
        (cg / "cgroup.procs").write_text(str(w.pid))
        args = ["-c", str(cg)]
        c, py = side_by_side(c_tool("runqlat") + args, py_tool(tools, "runqlat") + args,
                             r"Tracing run queue latency", w)
        c_total = sum(r[2] for r in hist_rows(c))
        py_total = sum(r[2] for r in hist_rows(py))
        print(f"runqlat -c: C {c_total}, btfgen {py_total}")
        assert py_total >= 2000
        assert abs(c_total - py_total) <= 0.02 * c_total + 2, (c, py)
    finally:
        w.close()  # the cgroup can go once its process has
        cg.rmdir()


TCP = """
import socket, threading
srv = socket.socket(FAMILY); srv.bind((HOST, 0)); srv.listen(64)
def serve():
    for _ in range(10):
        c, _ = srv.accept(); c.sendall(b'x' * 5000); c.recv(100); c.close()
t = threading.Thread(target=serve); t.start()
for i in range(10):
    c = socket.create_connection(srv.getsockname()[:2]); c.sendall(b'y' * (1000 + i))
    n = 0
    while n < 5000:
        n += len(c.recv(10000))
    c.close()
t.join()
"""


TCP4 = "FAMILY, HOST = socket.AF_INET, '127.0.0.1'\n" + TCP
TCP6 = "FAMILY, HOST = socket.AF_INET6, '::1'\n" + TCP


@pytest.mark.parametrize("family", ["-4", "-6"])
def test_tcplife_matches_c(tools: Path, workload_factory: type[Workload], family: str) -> None:
    if family == "-6" and not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    w = workload_factory("import socket\n" + (TCP4 if family == "-4" else TCP6))
    args = [family, "-w", "-p", str(w.pid)] if family == "-6" else ["-p", str(w.pid)]
    c, py = side_by_side(c_tool("tcplife") + args, py_tool(tools, "tcplife") + args,
                         r"RPORT", w, settle=1.0)
    assert c[0] == py[0]

    def sessions(lines: list[str]) -> Counter[str]:
        return Counter(line.rsplit(None, 1)[0] for line in lines[1:])  # without MS

    assert sum(sessions(py).values()) == 20, py
    assert sessions(py) == sessions(c)
    assert any(re.search(r" 4\.88\s+0\.98 ", line) for line in py), py  # 5000 out, 1000 in
    assert all((" ::1 " in line) == (family == "-6") for line in py[1:])


def test_tcplife_wide_and_port_filter(tools: Path, workload_factory: type[Workload]) -> None:
    w = workload_factory("import socket\n" + TCP4)
    args = ["-w", "-T", "-p", str(w.pid), "-D", "1,2,3"]  # ports nobody uses: no sessions
    c, py = side_by_side(c_tool("tcplife") + args, py_tool(tools, "tcplife") + args,
                         r"RPORT", w, settle=1.0)
    assert c == py and len(py) == 1


def test_tool_errors_are_one_line(tools: Path) -> None:
    r = subprocess.run(py_tool(tools, "runqlat") + ["-P", "-L"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "cannot be used together" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(py_tool(tools, "tcplife") + ["-L", "http"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "invalid port list" in r.stderr
    r = subprocess.run(py_tool(tools, "runqlat") + ["-c", "/nonexistent/cg", "1", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("runqlat: ")
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
