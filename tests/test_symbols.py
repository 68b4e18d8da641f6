"""Symbols: kallsyms, ELF (PIE program + shared library), folded lines; and stacks
sampled live by the profile tool (perf_event + stack trace map) resolving to the
functions of a program built here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from btfgen.runtime.symbols import (
    UNKNOWN,
    KernelSymbols,
    Symbol,
    UserSymbols,
    elf_symbols,
    folded,
    symbolize,
)
from tests.helpers.build import ROOT

LIB_SRC = r"""
#include <stdint.h>
volatile uint64_t sink;
__attribute__((noinline)) void lib_busy(double seconds)
{
	for (uint64_t i = 0; i < (uint64_t)(seconds * 4e8); i++)
		sink += i;
}
"""

PROG_SRC = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
void lib_busy(double seconds);
__attribute__((noinline)) void inner_fn(double s) { lib_busy(s); }
__attribute__((noinline)) void outer_fn(double s) { inner_fn(s); }
__attribute__((noinline)) void zero_reader(double s)
{
	static char buf[1 << 20];
	int fd = open("/dev/zero", O_RDONLY);
	for (long i = 0; i < (long)(s * 20000); i++)
		if (read(fd, buf, sizeof(buf)) < 0)
			break;
}
int main(int argc, char **argv)
{
	char line[16];
	printf("%p %p %p\n", (void *)outer_fn, (void *)inner_fn, (void *)lib_busy);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))   /* go */
		return 1;
	if (argc > 1 && !strcmp(argv[1], "read"))
		zero_reader(atof(argv[2]));
	else
		outer_fn(argc > 2 ? atof(argv[2]) : 3.0);
	printf("done\n");
	fflush(stdout);
	fgets(line, sizeof(line), stdin);   /* stay alive until told */
	return 0;
}
"""


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PIE program (main -> outer_fn -> inner_fn -> lib_busy in libbusy.so)."""
    d = tmp_path_factory.mktemp("busy")
    (d / "busy.c").write_text(LIB_SRC)
    (d / "main.c").write_text(PROG_SRC)
    flags = ["-O0", "-g", "-fno-omit-frame-pointer", "-fno-optimize-sibling-calls"]
    subprocess.run(["gcc", *flags, "-fPIC", "-shared", "-o", str(d / "libbusy.so"),
                    str(d / "busy.c")], check=True)
    subprocess.run(["gcc", *flags, "-pie", "-fPIE", "-o", str(d / "busy"), str(d / "main.c"),
                    f"-L{d}", "-lbusy", f"-Wl,-rpath,{d}"], check=True)
    return d / "busy"


class Busy:
    def __init__(self, exe: Path, *args: str) -> None:
        self.p = subprocess.Popen([str(exe), *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert self.p.stdout is not None
        self.addrs = [int(x, 16) for x in self.p.stdout.readline().split()]

    def go(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("go\n")
        self.p.stdin.flush()

    def wait_done(self) -> None:
        assert self.p.stdout is not None
        assert self.p.stdout.readline().strip() == "done"

    def close(self) -> None:
        if self.p.poll() is None:
            assert self.p.stdin is not None
            self.p.stdin.write("bye\n")
            self.p.stdin.close()
            self.p.wait(timeout=10)


@pytest.fixture
def running(busy: Path) -> Iterator[Busy]:
    b = Busy(busy)
    yield b
    b.close()


def test_user_symbols_pie_and_shared_library(running: Busy) -> None:
    outer, inner, lib_busy = running.addrs
    u = UserSymbols(running.p.pid)
    assert [u.resolve(a).name for a in running.addrs] == ["outer_fn", "inner_fn", "lib_busy"]
    s = u.resolve(inner + 3)
    assert (s.name, s.offset) == ("inner_fn", 3) and s.module and s.module.endswith("/busy")
    assert u.resolve(lib_busy + 1).module.endswith("/libbusy.so")  # type: ignore[union-attr]
    assert u.resolve(0x10).name == UNKNOWN
    assert symbolize([outer, 0xffff_ffff_ffff_0000 - 1], running.p.pid)[0].name == "outer_fn"
    assert elf_symbols(u.modules[0]) is elf_symbols(u.modules[0])  # cached


def test_user_symbols_after_exit(busy: Path) -> None:
    b = Busy(busy)
    u = UserSymbols(b.p.pid)
    b.close()
    # the mappings were read while it lived; the files are read by path afterwards
    assert u.resolve(b.addrs[0]).name == "outer_fn"
    assert UserSymbols(b.p.pid).resolve(b.addrs[0]).name == UNKNOWN


def test_kernel_symbols_from_kallsyms(tmp_path: Path) -> None:
    k = KernelSymbols()
    addr = k.address("ksys_read")
    assert addr is not None
    assert k.resolve(addr) == Symbol("ksys_read", 0, None)
    assert k.resolve(addr + 5).offset == 5
    assert k.resolve(1).name == UNKNOWN
    fake = tmp_path / "kallsyms"
    fake.write_text("ffffffff81000000 T _stext\nffffffff81000100 t helper\n"
                    "ffffffff81000200 D some_data\nffffffffc0000000 t modfn\t[mymod]\n")
    f = KernelSymbols(str(fake))
    assert f.resolve(0xFFFFFFFF81000150) == Symbol("helper", 0x50, None)
    assert f.resolve(0xFFFFFFFF81000250).name == "helper"  # data symbols are skipped
    assert f.resolve(0xFFFFFFFFC0000010) == Symbol("modfn", 0x10, "mymod")
    fake.write_text("0000000000000000 T _stext\n")
    with pytest.raises(PermissionError, match="no symbol addresses visible"):
        KernelSymbols(str(fake))


def test_folded_lines() -> None:
    frames = [Symbol("leaf"), Symbol("mid;dle"), Symbol("main")]  # innermost first
    assert folded(frames, comm="app", count=3) == "app;main;mid:dle;leaf 3"
    assert folded(["b", "a"]) == "a;b"
    assert folded([Symbol("evil\nmain 9")], count=1) == "evil main 9 1"
    assert Symbol("f", 0x1C, "/usr/lib/libx.so").format(offset=True, module=True) == \
        "f+0x1c [libx.so]"


def profile(exe: Path, mode: str, args: list[str]) -> tuple[str, int]:
    """Run the profile tool (2 s, on the pid) while ``exe`` works in ``mode``: its
    output and the pid."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "examples" / "tools"),
                    f"PYTHON={sys.executable}", "profile_skel.py"], check=True)
    # The work lasts longer than loading and sampling can take on a busy machine; it
    # is killed once the profile is printed (symbolized while it still lived).
    b = Busy(exe, mode, "30")
    try:
        b.go()
        prof = subprocess.Popen([sys.executable, "-u", str(ROOT / "examples/tools/profile.py"),
                                 *args, "-F", "199", "-p", str(b.p.pid), "2"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = prof.communicate(timeout=60)
    finally:
        b.p.kill()
        b.p.wait()
    assert prof.returncode == 0, err
    return out, b.p.pid


@pytest.mark.live
def test_profile_user_stacks_resolve_to_known_functions(busy: Path) -> None:
    out, _ = profile(busy, "spin", ["-f", "-U"])
    lines = out.splitlines()
    counts = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in lines}
    mine = {k: v for k, v in counts.items() if k.startswith("busy;")}
    assert mine, out
    chain = "main;outer_fn;inner_fn;lib_busy"
    hits = sum(v for k, v in mine.items() if chain in k)
    assert hits >= 0.8 * sum(mine.values()), out  # nearly every sample is in the spin


@pytest.mark.live
def test_profile_kernel_stacks_show_the_syscall(busy: Path) -> None:
    out, pid = profile(busy, "read", ["-d"])
    assert out.startswith(f"Sampling at 199 Hertz of PID {pid} by user + kernel stack "
                          "for 2 secs.\n")
    blocks = [blk for blk in out.split("\n\n") if f"busy ({pid})" in blk]
    assert blocks, out
    reading = [blk for blk in blocks if re.search(r"^    (__x64_sys_read|ksys_read)$", blk, re.M)]
    assert reading, out
    blk = reading[-1].splitlines()
    # kernel frames first (innermost first), the delimiter, then user frames to main (libc's
    # read() keeps no frame pointer, so frame-pointer unwinding skips its caller zero_reader)
    assert blk.index("    --") < blk.index("    read") < blk.index("    main")
    assert any(re.match(r"    (entry_SYSCALL_64|do_syscall_64)", x) for x in blk)


def test_speed_is_measured_not_asserted() -> None:
    # The speed of 100,000 resolves is measured in benchmarks/bench_symbols.py.
    assert (ROOT / "benchmarks" / "bench_symbols.py").exists()
    assert os.path.exists("/proc/kallsyms")


def test_fast_symbol_table_read_equals_pyelftools() -> None:
    # The one-pass unpacking of 64-bit symbol tables finds what pyelftools' own
    # symbol iteration finds (libc: .dynsym with IFUNCs; libpython-sized tables).
    from elftools.elf.elffile import ELFFile

    from btfgen.runtime import symbols

    libs = sorted({m for m in UserSymbols(os.getpid()).modules if ".so" in m})
    assert libs
    for path in libs:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            for sec in elf.iter_sections():
                if sec["sh_type"] not in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    continue
                fast: dict[int, tuple[int, str]] = {}
                slow: dict[int, tuple[int, str]] = {}
                symbols._add_functions(elf, sec, fast)
                for sym in sec.iter_symbols():
                    if sym["st_info"]["type"] in ("STT_FUNC", "STT_LOOS"):
                        symbols._add(slow, sym["st_value"], sym["st_size"], sym.name)
                assert fast == slow, (path, sec.name)


def test_corrupt_files_resolve_unknown(busy: Path, tmp_path: Path) -> None:
    # Truncated, garbled and non-ELF files never raise: their addresses are [unknown].
    import random

    from btfgen.runtime.symbols import ElfSymbols

    whole = busy.read_bytes()
    assert len(ElfSymbols(str(busy))) > 0
    rng = random.Random(7)
    cases = {"empty": b"", "text": b"not an ELF file\n", "half": whole[:len(whole) // 2],
             "header": whole[:64]}
    for i in range(400):  # the ELF header, section headers (at the end), program headers, anywhere
        data = bytearray(whole)
        lo, hi = [(0, 64), (len(whole) - 2048, len(whole)), (64, 1024), (0, len(whole))][i % 4]
        for _ in range(rng.randrange(1, 12)):
            data[rng.randrange(lo, hi)] = rng.randrange(256)
        cases[f"garbled{i}"] = bytes(data)
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        syms = ElfSymbols(str(path))
        assert syms.resolve(0x1000) is None or isinstance(syms.resolve(0x1000)[0], str), name
