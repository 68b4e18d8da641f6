"""``btfgen check``, and the CLI's native feel (--version, --help examples)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import btfgen
from btfgen.gen.check import compare
from tests.helpers.build import compile_bpf, run_btfgen

PROG = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sample { __u64 ts; __u32 pid; %s };

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} samples SEC(".maps") __attribute__((btf_decl_tag("btfgen:record=struct sample")));

struct sample *keep_sample __attribute__((unused));
struct extra { int a; } *keep_extra __attribute__((unused));

SEC("tracepoint/syscalls/sys_enter_getpid")
int on_getpid(void *ctx)
{
	struct sample *s = bpf_ringbuf_reserve(&samples, sizeof(*s), 0);
	if (!s)
		return 0;
	s->ts = bpf_ktime_get_ns();
	s->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_ringbuf_submit(s, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same program twice: ``v1`` and ``v2`` (struct sample grew a field)."""
    d = tmp_path_factory.mktemp("check")
    (d / "v1").mkdir()
    (d / "v2").mkdir()
    return (compile_bpf(PROG % "", d / "v1" / "sample.bpf.o"),
            compile_bpf(PROG % "__u32 uid;", d / "v2" / "sample.bpf.o"))


@pytest.fixture
def fresh(tmp_path: Path, objects: tuple[Path, Path]) -> tuple[Path, Path]:
    """``(object, module)`` with the module just written by ``gen``."""
    out = tmp_path / "pkg" / "sample_skel.py"
    out.parent.mkdir()
    run_btfgen("gen", objects[0], "-o", out, check=True)
    return objects[0], out


def test_fresh_module_passes(fresh: tuple[Path, Path]) -> None:
    obj, out = fresh
    r = run_btfgen("check", obj, "-o", out)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == f"{out}: up to date with {obj}\n"


def test_edited_module_fails_with_diff_summary(fresh: tuple[Path, Path]) -> None:
    obj, out = fresh
    lines = out.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if "pid: int" in line)
    lines[at] = lines[at].replace("pid: int", "pid: float")
    edited = "".join(lines)
    out.write_text(edited)
    r = run_btfgen("check", obj, "-o", out)
    assert r.returncode == 1 and r.stdout == ""
    *excerpt, last = r.stderr.splitlines()
    assert last == (f"btfgen: {out}: out of date with {obj}: 2 lines differ (+1 -1),"
                    f" first at line {at + 1} -- regenerate with: btfgen gen {obj} -o {out}")
    assert excerpt == [f"  @@ -{at + 1} +{at + 1} @@", "  " + "-" + lines[at].rstrip("\n"),
                       "  " + "+" + lines[at].replace("float", "int").rstrip("\n")]
    assert out.read_text() == edited  # check never writes


def test_module_of_another_object_names_the_change(fresh: tuple[Path, Path],
                                                   objects: tuple[Path, Path]) -> None:
    _, out = fresh
    new_obj = objects[1]
    r = run_btfgen("check", new_obj, "-o", out)
    assert r.returncode == 1
    last = r.stderr.splitlines()[-1]
    assert last.startswith(f"btfgen: {out}: out of date with {new_obj}: object changed (sha256 ")
    assert " lines differ (+" in last and ", first at line 2 " in last
    assert len(r.stderr.splitlines()) <= 7  # a summary, not the whole diff


def test_missing_module_is_one_clear_line(tmp_path: Path, objects: tuple[Path, Path]) -> None:
    out = tmp_path / "missing_skel.py"
    r = run_btfgen("check", objects[0], "-o", out)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == (f"btfgen: {out}: does not exist -- create it with:"
                        f" btfgen gen {objects[0]} -o {out}\n")
    assert not out.exists()


@pytest.mark.slow
def test_gen_options_are_compared_and_repeated_in_the_fix(
        tmp_path: Path, objects: tuple[Path, Path]) -> None:
    out = tmp_path / "sample_skel.py"
    opts = ["--name", "probe", "--type", "struct extra"]
    run_btfgen("gen", objects[0], "-o", out, *opts, check=True)
    assert run_btfgen("check", objects[0], "-o", out, *opts).returncode == 0
    r = run_btfgen("check", objects[0], "-o", out)  # without the options: a different module
    assert r.returncode == 1
    r = run_btfgen("check", objects[0], "-o", out, "--name", "other", "--type", "struct extra")
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].endswith(
        f"regenerate with: btfgen gen {objects[0]} -o {out} --name other --type 'struct extra'")


def test_bad_object_is_reported_like_gen(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bpf.o"
    bad.write_bytes(b"not an ELF file")
    out = tmp_path / "bad_skel.py"
    gen = run_btfgen("gen", bad, "-o", out)
    check = run_btfgen("check", bad, "-o", out)
    assert check.returncode == gen.returncode == 1
    assert check.stderr == gen.stderr and check.stderr.count("\n") == 1
    assert check.stderr.startswith(f"btfgen: {bad}: ")


def test_check_is_identical_to_gen_output_byte_for_byte(fresh: tuple[Path, Path],
                                                        tmp_path: Path) -> None:
    obj, out = fresh
    copy = tmp_path / "copy_skel.py"
    shutil.copy(out, copy)
    with copy.open("ab") as f:
        f.write(b"\n")  # one trailing newline more
    r = run_btfgen("check", obj, "-o", copy)
    assert r.returncode == 1
    assert ": 1 line differs (+0 -1), first at line " in r.stderr


def test_compare_reports_btfgen_version_change() -> None:
    head = "# Generated by btfgen {} from x.bpf.o\n# (sha256 " + "ab" * 32 + ").\nbody\n"
    result = compare(head.format("0.0.9"), head.format(btfgen.__version__))
    assert not result.fresh
    assert result.summary == (f"written by btfgen 0.0.9, this is {btfgen.__version__};"
                              " 2 lines differ (+1 -1), first at line 1")
    assert compare("same\n", "same\n").fresh


# -- native feel ---------------------------------------------------------------------


def test_version() -> None:
    r = run_btfgen("--version")
    # the first line is what scripts read; details follow (tests/test_doctor.py)
    assert (r.returncode, r.stdout.splitlines()[0]) == (0, f"btfgen {btfgen.__version__}")


@pytest.mark.parametrize("command", [[], ["dump"], ["info"], ["gen"], ["check"]])
def test_help_has_examples(command: list[str]) -> None:
    r = run_btfgen(*command, "--help")
    assert r.returncode == 0
    examples = r.stdout.split("\nexample")[1]
    assert "  btfgen " + (command[0] if command else "") in examples


def test_package_is_typed() -> None:
    assert (Path(btfgen.__file__).parent / "py.typed").is_file()
