"""Bad input on the command line: one stderr line ``btfgen: FILE: problem``,
exit 1, no traceback, no output, no output file."""

from __future__ import annotations

import importlib.util
import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from btfgen import cli
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import compile_bpf, run_btfgen

SRC = """
#include <linux/types.h>
#define SEC(n) __attribute__((section(n), used))
struct event { __u32 pid; char comm[16]; };
struct event last;
SEC("kprobe/x") int prog(void *ctx) { last.pid = 1; return 0; }
char LICENSE[] SEC("license") = "GPL";
"""


def _section_offset(data: bytes, name: str) -> int:
    sec = ELFFile(io.BytesIO(data)).get_section_by_name(name)
    assert sec is not None
    return int(sec["sh_offset"])


def _patched(data: bytes, off: int, new: bytes) -> bytes:
    return data[:off] + new + data[off + len(new):]


def _btf_ext_num_info_offset(data: bytes) -> int:
    """Where the first func_info section's record count is in the file."""
    ext = _section_offset(data, ".BTF.ext")
    hdr_len, func_info_off = struct.unpack_from("<II", data, ext + 4)
    return ext + hdr_len + func_info_off + 8


def _raw(build: Callable[[BtfBuilder], object]) -> bytes:
    b = BtfBuilder()
    build(b)
    return b.build()


def _int_btf(**build_args: int) -> bytes:
    b = BtfBuilder()
    b.int_("int", 4, signed=True)
    return b.build(**build_args)


def _loop(b: BtfBuilder) -> None:
    b.typedef("a", b.next_id + 1)
    b.typedef("b", b.next_id - 1)


def _overrun(b: BtfBuilder) -> None:
    b.raw_type("s", 4, 100, False, 8)  # a struct claiming 100 members, with none


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """name -> (file, text the error must contain)."""
    d = tmp_path_factory.mktemp("bad")
    good = compile_bpf(SRC, d / "good.bpf.o").read_bytes()
    btf_off = _section_offset(good, ".BTF")
    files: dict[str, tuple[bytes | None, str]] = {
        "missing": (None, "No such file or directory"),
        "empty": (b"", "empty file"),
        "text": (b"hello world\n", "bad magic"),
        "not_bpf": (compile_bpf(SRC.replace('"kprobe/x"', '".text.x"'), d / "x86.o",
                                target="x86_64").read_bytes(), "not EM_BPF"),
        "no_btf": (compile_bpf(SRC, d / "nobtf.o", cflags=["-g0"]).read_bytes(), "clang -g"),
        "truncated": (good[: len(good) // 2], "truncated ELF"),
        "truncated_header": (good[:40], "truncated ELF"),
        "elf_bad_btf_magic": (_patched(good, btf_off, b"\0\0"), "bad BTF magic"),
        "elf_btf_overrun": (_patched(good, btf_off + 12, struct.pack("<I", 0x7FFFFFF0)),
                            "overruns"),
        "elf_bad_shoff": (_patched(good, 40, struct.pack("<Q", 1 << 40)), "truncated ELF"),
        "btf_ext_count": (_patched(good, _btf_ext_num_info_offset(good),
                                   struct.pack("<I", 0xFFFFFF)), "bad .BTF.ext"),
        "raw_bad_version": (_int_btf(version=2), "BTF version"),
        "raw_truncated": (_int_btf()[:30], "overruns"),
        "ref_out_of_range": (_raw(lambda b: b.ptr(99)), "out of range"),
        "ref_loop": (_raw(_loop), "loop"),
        "count_overrun": (_raw(_overrun), "(vlen 100) overrun"),
    }
    out = {}
    for name, (content, expect) in files.items():
        path = d / f"{name}.bin"
        if content is not None:
            path.write_bytes(content)
        out[name] = (path, expect)
    out["directory"] = (d, "Is a directory")
    return out


CASES = ["missing", "empty", "text", "not_bpf", "no_btf", "truncated", "truncated_header",
         "elf_bad_btf_magic", "elf_btf_overrun", "elf_bad_shoff", "raw_bad_version",
         "raw_truncated", "ref_out_of_range", "ref_loop", "count_overrun", "directory"]
HAVE_GEN = importlib.util.find_spec("btfgen.gen.module") is not None


def _check_one_line(stderr: str, path: Path, expect: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"btfgen: {path}: "), lines[0]
    assert expect in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["dump", "info", "gen"])
def test_bad_input(bad_inputs: dict[str, tuple[Path, str]], tmp_path: Path, case: str,
                   command: str) -> None:
    path, expect = bad_inputs[case]
    out_file = tmp_path / "out_skel.py"
    args: list[str | Path] = [command, path]
    if command == "gen":
        if not HAVE_GEN:
            pytest.skip("btfgen gen is not implemented yet (issue 3)")
        args += ["-o", out_file]
    r = run_btfgen(*args, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""
    _check_one_line(r.stderr, path, expect)
    assert not out_file.exists()
    assert list(tmp_path.iterdir()) == []


def test_bad_btf_ext_on_info(bad_inputs: dict[str, tuple[Path, str]]) -> None:
    """``info`` checks .BTF.ext; ``dump`` shows the BTF as bpftool would."""
    path, expect = bad_inputs["btf_ext_count"]
    r = run_btfgen("info", path)
    assert r.returncode == 1 and r.stdout == ""
    _check_one_line(r.stderr, path, expect)
    assert run_btfgen("dump", path).returncode == 0


@pytest.mark.parametrize("base_case", ["missing", "text", "ref_loop"])
def test_bad_base_names_the_base(bad_inputs: dict[str, tuple[Path, str]], base_case: str,
                                 tmp_path: Path) -> None:
    good = tmp_path / "split.btf"
    good.write_bytes(_int_btf())
    base, expect = bad_inputs[base_case]
    r = run_btfgen("dump", good, "--base", base)
    assert r.returncode == 1 and r.stdout == ""
    _check_one_line(r.stderr, base, expect)


def test_internal_error_is_one_line_and_says_bug(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        bad_inputs: dict[str, tuple[Path, str]]) -> None:
    import btfgen.elf.reader as reader

    def broken(*_args: object) -> None:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(reader, "read_btf", broken)
    monkeypatch.delenv("BTFGEN_TRACEBACK", raising=False)
    assert cli.main(["dump", "some.o"]) == cli.EXIT_BUG
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("btfgen: some.o: internal error: ZeroDivisionError")
    assert "btfgen bug" in err
    monkeypatch.setenv("BTFGEN_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        cli.main(["dump", "some.o"])


def test_good_input_still_works(bad_inputs: dict[str, tuple[Path, str]]) -> None:
    good = bad_inputs["missing"][0].parent / "good.bpf.o"
    r = run_btfgen("info", good)
    assert r.returncode == 0 and r.stderr == ""
    assert "prog  kprobe (KPROBE)" in r.stdout
