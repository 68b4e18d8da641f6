"""Names are code: hostile type, member, enumerator, map, program and variable
names give a module that is valid Python, imports, runs nothing from the names
and keeps every field reachable under a deterministic sanitized name.

Objects are crafted two ways: raw BTF written with the BTF builder (gen with
``--type``), and a compiled ``.bpf.o`` whose placeholder names are rewritten in
place in ``.BTF`` and ``.strtab`` (so maps, programs and globals get hostile
names libbpf itself will read).  Importing happens in a fresh interpreter whose
working directory would receive a sentinel file if any name's code ran.
"""

from __future__ import annotations

import ast
import json
import keyword
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.btf_builder import INT_BOOL, BtfBuilder
from tests.helpers.build import compile_bpf, run_btfgen
from tests.helpers.lint import mypy_strict, ruff
from tests.helpers.mutate import replace_names

#: Running any of these creates ``P`` (or ``Q``) in the working directory.
INJECTIONS = (
    b"__import__('os').system('touch P')",
    b"x\"); open('P', 'w'); (\"",
    b"x'); open('P', 'w'); ('",
    b'"""; open("P", "w"); """',
    b"'''; open('Q', 'w'); '''",
    b"\\\"); open('P','w') #",
    b"\n__import__('os').system('touch P')\n",
    b"{{ open('P','w') }}",
    b"\\N{}); open('Q','w'",
)
#: Everything else that has broken generators: quotes, escapes, bad UTF-8,
#: keywords, builtins, dunders, our own API, Python's own class machinery.
ODD = (
    b'"', b"'", b"\\", b"x\ny", b"a b", b"a.b", b"func.var", b"1st", b"\xff\xfe", b"\xc3(",
    b"\xed\xa0\x80", b"caf\xc3\xa9", b"\xe2\x80\xae", b"class", b"def", b"None", b"match",
    b"int", b"bytes", b"__class__", b"__init__", b"__slots__", b"__dict__", b"__", b"_",
    b"__x", b"SIZE", b"from_bytes", b"to_bytes", b"ffi", b"TYPES", b"struct", b"dataclass",
    b"ClassVar", b"field", b"self", b"cls", b"buf", b"offset", b"v", b"l", b"mro",
    b"name", b"value", b"_codec", b"_rt", b"annotations",
)
NAMES = INJECTIONS + ODD


def _import_in_subprocess(module: Path, script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('hostile', {str(module)!r})\n"
            "mod = importlib.util.module_from_spec(spec)\n"
            "sys.modules['hostile'] = mod\n"
            "spec.loader.exec_module(mod)\n" + script)
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def _no_sentinels(cwd: Path) -> None:
    assert not (cwd / "P").exists() and not (cwd / "Q").exists(), "a name's code ran"


def _valid_python(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    ast.parse(text)
    assert text.isascii() or "\udc80" not in text
    return text


# -- raw BTF ---------------------------------------------------------------------

def hostile_btf(dup_name: bytes = b"dup", dup_name2: bytes = b"dup2",
                anon: bool = False) -> tuple[bytes, int]:
    """A typedef ``root_t`` of a struct named by an injection whose members
    carry every hostile name (member i is a u32 at offset 4*i), an enum whose
    enumerators do too, two structs named ``dup_name``/``dup_name2`` (pass one
    name twice for two different structs with one name), and a nested
    anonymous struct with hostile member names if ``anon``.  Returns the blob
    and the number of u32 members."""
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4)
    boolean = b.int_("_Bool", 1, encoding=INT_BOOL)
    e = b.enum(INJECTIONS[1], 4, [(n, i) for i, n in enumerate(NAMES)])
    dup1 = b.struct(dup_name, 4, [(INJECTIONS[0], u32, 0)])
    dup2 = b.struct(dup_name2, 8, [(b"x\ny", u32, 0), (b"class", u32, 32)])
    anon_id = b.struct(0, 8, [(INJECTIONS[2], u32, 0), (b"__init__", u32, 32)])
    members: list[tuple[bytes | int, int, int]] = [
        (n, u32, 32 * i) for i, n in enumerate(NAMES)]
    off = 32 * len(NAMES)
    members += [(b"ffi", e, off), (b"dup", dup1, off + 32), (b"__dict__", dup2, off + 64),
                (b"TYPES", boolean, off + 192)]
    if anon:
        members.append((0, anon_id, off + 128))
    root = b.struct(INJECTIONS[0], off // 8 + 32, members)
    b.typedef("root_t", root)
    b.typedef(INJECTIONS[3], root)
    return b.build(), len(NAMES)


@pytest.fixture(scope="module")
def raw_module(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    d = tmp_path_factory.mktemp("hostile_raw")
    blob, n = hostile_btf()
    (d / "hostile.btf").write_bytes(blob)
    r = run_btfgen("gen", d / "hostile.btf", "--type", "root_t", "-o", d / "h1.py", cwd=d)
    assert r.returncode == 0, r.stderr
    r = run_btfgen("gen", d / "hostile.btf", "--type", "root_t", "-o", d / "h2.py", cwd=d)
    assert r.returncode == 0, r.stderr
    _no_sentinels(d)
    return d, n


def test_raw_btf_module_is_valid_and_deterministic(raw_module: tuple[Path, int]) -> None:
    d, _ = raw_module
    _valid_python(d / "h1.py")
    assert (d / "h1.py").read_bytes() == (d / "h2.py").read_bytes()


def _lint(path: Path) -> None:
    """The generated-module contract: ruff (project rules) and mypy --strict clean."""
    r = ruff([path])
    assert r.returncode == 0, r.stdout + r.stderr
    r = mypy_strict([path], follow_imports="normal")
    assert r.returncode == 0, r.stdout + r.stderr


def test_raw_btf_module_passes_ruff_and_mypy(raw_module: tuple[Path, int]) -> None:
    _lint(raw_module[0] / "h1.py")


def test_raw_btf_every_field_reachable_nothing_runs(raw_module: tuple[Path, int]) -> None:
    d, n = raw_module
    script = f"""
import dataclasses, json, keyword
root = mod.TYPES["root_t"]
size = root.SIZE
buf = bytearray(size)
for i in range({n}):
    buf[4 * i:4 * i + 4] = (1000 + i).to_bytes(4, "little")
rec = root.from_bytes(bytes(buf))
names = [f.name for f in dataclasses.fields(rec)]
vals = [getattr(rec, f) for f in names]
assert all(x.isidentifier() and not keyword.iskeyword(x) for x in names), names
assert len(set(names)) == len(names), names
assert rec.to_bytes() == bytes(buf)
import enum
enums = [c for c in vars(mod).values() if isinstance(c, type) and issubclass(c, enum.IntEnum)
         and c is not enum.IntEnum]
members = [(m.name, m.value) for e in enums for m in e]
assert all(m.isidentifier() and not keyword.iskeyword(m) for m, _ in members), members
out = dict(names=names, ints=[v for v in vals if isinstance(v, int)][:{n}],
           enum_values=sorted(v for _, v in members),
           classes=sorted(c.__name__ for c in set(mod.TYPES.values())),
           spellings=sorted(mod.TYPES), all=list(mod.__all__))
print(json.dumps(out))
"""
    r = _import_in_subprocess(d / "h1.py", script, d)
    assert r.returncode == 0, r.stderr
    _no_sentinels(d)
    out = json.loads(r.stdout)
    # every u32 member decodes to the value written at its offset, in order
    assert out["ints"] == [1000 + i for i in range(n)]
    names = out["names"]
    assert len(names) == n + 4  # and the enum, the two structs, the bool
    for name in ("class", "def", "None", "match", "__class__", "__init__", "SIZE", "from_bytes",
                 "to_bytes", "ffi", "TYPES"):
        assert name not in names  # each was renamed...
        assert name + "_" in names or any(x.startswith(name.strip("_")) for x in names)
    assert sum(1 for c in out["classes"] if c.lower().startswith("dup")) == 2
    assert set(out["classes"]) <= set(out["all"])
    # every enumerator is a member, under a distinct name
    assert out["enum_values"] == list(range(len(NAMES)))
    # the C spellings are kept as data, not code
    assert "root_t" in out["spellings"]


def test_two_structs_with_one_name(tmp_path: Path) -> None:
    """Two different ``struct dup`` (legal in BTF: from two compilation units)
    are two classes, both decoding their own layout."""
    blob, _ = hostile_btf(b"dup", b"dup")
    (tmp_path / "dup.btf").write_bytes(blob)
    r = run_btfgen("gen", tmp_path / "dup.btf", "--type", "root_t", "-o", tmp_path / "d.py",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _import_in_subprocess(tmp_path / "d.py", """
classes = sorted((c.__name__, c.SIZE) for c in set(mod.TYPES.values())
                 if hasattr(c, "SIZE") and c.__name__.lower().startswith("dup"))
print(classes)
""", tmp_path)
    assert r.returncode == 0, r.stderr
    _no_sentinels(tmp_path)
    assert [size for _, size in eval(r.stdout)] in ([4, 8], [8, 4])


def test_anonymous_member_with_hostile_names(tmp_path: Path) -> None:
    """An anonymous struct whose members are not C identifiers, inside a struct
    whose members are not either: all reachable on the parent."""
    blob, n = hostile_btf(anon=True)
    (tmp_path / "anon.btf").write_bytes(blob)
    r = run_btfgen("gen", tmp_path / "anon.btf", "--type", "root_t", "-o", tmp_path / "a.py",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _import_in_subprocess(tmp_path / "a.py", f"""
import dataclasses
root = mod.TYPES["root_t"]
buf = bytearray(root.SIZE)
off = 4 * {n} + 16
buf[off:off + 8] = (7).to_bytes(4, "little") + (8).to_bytes(4, "little")
rec = root.from_bytes(bytes(buf))
print([getattr(rec, f.name) for f in dataclasses.fields(rec)][-2:])
""", tmp_path)
    assert r.returncode == 0, r.stderr
    _no_sentinels(tmp_path)
    assert r.stdout.strip() == "[7, 8]"


# -- an ELF object whose names are rewritten in place ------------------------------

PLACE = 48  # placeholder length: the longest hostile name that fits


def _ph(i: int) -> str:
    return f"QQ{i:02d}" + "Z" * (PLACE - 4)


#: placeholder index -> hostile name
ELF_NAMES: dict[int, bytes] = {
    0: b"__import__('os').system('touch P')",  # struct type name
    1: b"x\"); open('P', 'w'); (\"",  # member
    2: b"__class__",  # member
    3: b"SIZE",  # member
    4: b"a b",  # member (sanitizes like the next one)
    5: b"a.b",  # member
    6: b"\xff\xfe",  # member, not UTF-8
    7: b"ffi",  # map
    8: b"m\"a'p\n\\",  # map
    9: b"m\xc3\xa9p",  # map, UTF-8 (not UTF-8 in the "bytes" variant)
    10: b"__init__",  # program
    11: b"x'); open('P', 'w'); ('",  # program
    12: b"TYPES",  # global in .data
    13: b"class",  # global in .data
    14: b"'''; open('Q', 'w'); '''",  # global in .bss
    15: b"from_bytes",  # global in .rodata
    16: b"\\N{",  # global (struct) in .data
}

ELF_SRC = """
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {p0} {{ __u32 {p1}; __u32 {p2}; __u32 {p3}; __u32 {p4}; __u32 {p5}; __u32 {p6}; }};

struct {{ __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u32);
         __type(value, struct {p0}); }} {p7} SEC(".maps");
struct {{ __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32);
         __type(value, __u64); }} {p8} SEC(".maps");
struct {{ __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4);
         __uint(value_size, 4); }} {p9} SEC(".maps");

__u64 {p12} = 101;
__u32 {p13} = 102;
__u64 {p14};
const volatile __u32 {p15} = 104;
struct {p0} {p16} = {{ 11, 12, 13, 14, 15, 16 }};

SEC("tp/syscalls/sys_enter_getppid")
int {p10}(void *ctx)
{{
	static __u64 calls = 105;
	__u32 k = 0;
	calls++;
	bpf_map_update_elem(&{p7}, &k, &{p16}, BPF_ANY);
	{p14} = {p12} + {p13} + {p15};
	return 0;
}}

SEC("kprobe/do_nanosleep")
int {p11}(void *ctx)
{{
	__u32 k = 1;
	__u64 v = 1;
	bpf_map_update_elem(&{p8}, &k, &v, BPF_ANY);
	return 0;
}}
char LICENSE[] SEC("license") = "GPL";
"""


#: The "bytes" variant: a map and a program whose names are not UTF-8.
NOT_UTF8 = {9: b"\xc3(map", 10: b"__init__\xff"}


def elf_names(variant: str) -> dict[int, bytes]:
    return {**ELF_NAMES, **NOT_UTF8} if variant == "bytes" else ELF_NAMES


@pytest.fixture(scope="module", params=["utf8", "bytes"])
def elf_module(request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, bytes]]:
    d = tmp_path_factory.mktemp(f"hostile_elf_{request.param}")
    names = elf_names(request.param)
    src = ELF_SRC.format(**{f"p{i}": _ph(i) for i in ELF_NAMES})
    obj = compile_bpf(src, d / "plain.bpf.o").read_bytes()
    hostile = replace_names(obj, {_ph(i).encode(): n for i, n in names.items()})
    (d / "hostile.bpf.o").write_bytes(hostile)
    for out in ("h1.py", "h2.py"):
        r = run_btfgen("gen", d / "hostile.bpf.o", "-o", d / out, cwd=d)
        assert r.returncode == 0, r.stderr
    _no_sentinels(d)
    return d, names


def test_elf_names_reach_btfgen_info(elf_module: tuple[Path, dict[int, bytes]]) -> None:
    d, names = elf_module
    r = run_btfgen("info", d / "hostile.bpf.o")
    assert r.returncode == 0, r.stderr
    assert "__init__" in r.stdout
    assert "m\"a'p\\n\\" in r.stdout  # escaped: still one line per map
    if names[9] == NOT_UTF8[9]:
        assert "\\xc3(map" in r.stdout and "__init__\\xff" in r.stdout


def test_elf_module_is_valid_deterministic_and_lint_clean(
        elf_module: tuple[Path, dict[int, bytes]]) -> None:
    d, _ = elf_module
    _valid_python(d / "h1.py")
    assert (d / "h1.py").read_bytes() == (d / "h2.py").read_bytes()
    _lint(d / "h1.py")


def test_elf_maps_programs_globals_reachable_nothing_runs(
        elf_module: tuple[Path, dict[int, bytes]]) -> None:
    """Open the skeleton (libbpf parses the object; nothing goes to the kernel):
    every map, program and global is an attribute, found by its real name."""
    script = """
import dataclasses, inspect, json, keyword
from btfgen.runtime import var
skel_cls = [getattr(mod, n) for n in mod.__all__ if n.endswith("Skel")][0]
out = {}
with skel_cls.open() as skel:
    out["maps"] = {a: m.name for a, m in vars(skel.maps).items()}
    out["progs"] = {a: p.name for a, p in vars(skel.progs).items()}
    glob = {}
    for ns_name in ("data", "bss", "rodata"):
        ns = getattr(skel, ns_name)
        for a in dir(type(ns)):
            if isinstance(inspect.getattr_static(ns, a), var):
                v = getattr(ns, a)
                if dataclasses.is_dataclass(v):
                    v = [getattr(v, f.name) for f in dataclasses.fields(v)]
                glob[ns_name + "." + a] = v
    out["globals"] = glob
    rec_cls = [c for c in set(mod.TYPES.values()) if hasattr(c, "SIZE")][0]
    out["fields"] = [f.name for f in dataclasses.fields(rec_cls)]
names = list(out["maps"]) + list(out["progs"]) + out["fields"]
assert all(n.isidentifier() and not keyword.iskeyword(n) for n in names), names
print(json.dumps(out, ensure_ascii=True))
"""
    d, names = elf_module
    r = _import_in_subprocess(d / "h1.py", script, d)
    assert r.returncode == 0, r.stderr
    _no_sentinels(d)
    out = json.loads(r.stdout)

    def real(*idx: int) -> set[str]:
        return {names[i].decode("utf-8", "surrogateescape") for i in idx}

    assert set(out["maps"].values()) == real(7, 8, 9)
    assert set(out["progs"].values()) == real(10, 11)
    assert "ffi" not in out["maps"] and "__init__" not in out["progs"]
    values = sorted(v for v in out["globals"].values() if isinstance(v, int))
    assert values == [0, 101, 102, 104, 105], out["globals"]
    assert [11, 12, 13, 14, 15, 16] in out["globals"].values()
    assert len(out["fields"]) == 6 and len(set(out["fields"])) == 6
    assert not any(keyword.iskeyword(f) for f in out["fields"])


def test_private_names_starting_with_a_digit(tmp_path: Path) -> None:
    """``__0``, ``__1st`` (Python would mangle ``__x``; stripping the
    underscores must not leave a leading digit), as members and enumerators."""
    b = BtfBuilder()
    u32 = b.int_("unsigned int", 4)
    e = b.enum(b"e", 4, [(b"__0", 0), (b"__1st", 1)])
    s = b.struct(b"s", 12, [(b"__0", u32, 0), (b"__1st", u32, 32), (b"__9__", e, 64)])
    b.typedef("root_t", s)
    (tmp_path / "d.btf").write_bytes(b.build())
    r = run_btfgen("gen", tmp_path / "d.btf", "--type", "root_t", "-o", tmp_path / "d.py",
                   cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    _valid_python(tmp_path / "d.py")
    r = _import_in_subprocess(tmp_path / "d.py", """
import dataclasses
root = mod.TYPES["root_t"]
rec = root.from_bytes(bytes([1, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]))
print([(f.name, int(getattr(rec, f.name))) for f in dataclasses.fields(rec)])
""", tmp_path)
    assert r.returncode == 0, r.stderr
    fields = eval(r.stdout)
    assert [v for _, v in fields] == [1, 2, 1]
    assert all(n.isidentifier() for n, _ in fields)
