"""The object reader: programs, maps, globals and DATASEC fix-ups of real objects.

``tests/data/features.bpf.c`` uses every map, global-data and section feature
the reader knows; its values are checked here against what the source says and
against independent tools (llvm-readelf symbol values, bpftool's skeleton).
"""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from btfgen.btf_model import Btf, Datasec, Kind, Var
from btfgen.btf_parse import parse_btf
from btfgen.dump.info import format_info
from btfgen.elf.maps import parse_map_def
from btfgen.elf.model import BpfObject, DataSection, MapDef
from btfgen.elf.reader import read_btf, read_input, read_object_bytes
from btfgen.elf.sections import classify_section
from btfgen.errors import BtfError, BtfgenError, ObjectError
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import DATA, compile_bpf

FEATURES = (DATA / "features.bpf.c").read_text()


@pytest.fixture(scope="session")
def features_o(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_bpf(FEATURES, tmp_path_factory.mktemp("feat") / "features.bpf.o")


@pytest.fixture(scope="session")
def features(features_o: Path) -> BpfObject:
    return read_input(str(features_o))


def _map(obj: BpfObject, name: str) -> MapDef:
    return next(m for m in obj.maps if m.name == name)


def _sec(obj: BpfObject, name: str) -> DataSection:
    return next(s for s in obj.sections if s.name == name)


def _vars(sec: DataSection) -> dict[str, tuple[int, int]]:
    return {v.name: (v.offset, v.size) for v in sec.variables}


# -- programs -----------------------------------------------------------------

def test_programs(features: BpfObject) -> None:
    got = {p.name: (p.section, p.attach_kind, p.attach_target, p.prog_type)
           for p in features.programs}
    assert got["tp_exec"] == ("tracepoint/syscalls/sys_enter_execve", "tracepoint",
                              "syscalls/sys_enter_execve", "TRACEPOINT")
    assert got["tp_switch"] == ("tp/sched/sched_switch", "tracepoint", "sched/sched_switch",
                                "TRACEPOINT")
    assert got["krp"][1:] == ("kretprobe", "do_unlinkat", "KPROBE")
    assert got["up"][1:] == ("uprobe", "", "KPROBE")
    assert got["ks"][1:] == ("ksyscall", "openat", "KPROBE")
    assert got["fx"][1:] == ("fexit", "do_unlinkat", "TRACING")
    assert got["fm"][1:] == ("fmod_ret", "do_unlinkat", "TRACING")
    assert got["lsm_open"][1:] == ("lsm", "file_open", "LSM")
    assert got["tpbtf"][1:] == ("tp_btf", "sched_switch", "TRACING")
    assert got["rawtp"][1:] == ("raw_tracepoint", "sys_enter", "RAW_TRACEPOINT")
    assert got["xdp_prog"][1:] == ("xdp", "", "XDP")
    assert got["tc_prog"][1:] == ("tc", "", "SCHED_CLS")
    assert got["cls_prog"][1:] == ("tc", "", "SCHED_CLS")
    assert got["sock_prog"][1:] == ("socket", "", "SOCKET_FILTER")
    assert got["cg_in"][1:] == ("cgroup_skb", "ingress", "CGROUP_SKB")
    assert got["pe"][1:] == ("perf_event", "", "PERF_EVENT")
    assert got["it"][1:] == ("iter", "task", "TRACING")
    assert got["skmsg"][1:] == ("sk_msg", "", "SK_MSG")
    assert got["my_fn"][1:] == ("struct_ops", "my_fn", "STRUCT_OPS")
    assert got["weird"][1:] == ("", "", "UNSPEC")
    fs = next(p for p in features.programs if p.name == "fs")
    assert (fs.attach_kind, fs.sleepable, fs.prog_type) == ("fentry", True, "TRACING")
    assert len(features.programs) == 23


def test_two_programs_in_one_section(features: BpfObject) -> None:
    progs = [p for p in features.programs if p.section == "kprobe/do_unlinkat"]
    assert [p.name for p in progs] == ["kp_a", "kp_b"]
    assert all(p.size > 0 and p.attach_kind == "kprobe" for p in progs)


@pytest.mark.parametrize("name,kind,target", [
    ("kprobe", "kprobe", ""),
    ("kprobe/x", "kprobe", "x"),
    ("kprobex", "", ""),  # '+' definitions need a '/' separator
    ("xdp/foo", "", ""),  # exact definitions match exactly
    ("xdp.frags", "xdp.frags", ""),
    ("uprobe.s/bin:fn", "uprobe", "bin:fn"),
    ("raw_tp.w/x", "raw_tracepoint.w", "x"),
    ("cgroup/connect4", "cgroup", "connect4"),
    ("usdt/lib:prov:name", "usdt", "lib:prov:name"),
])
def test_classify_section(name: str, kind: str, target: str) -> None:
    k = classify_section(name)
    assert (k.attach_kind, k.attach_target) == (kind, target)


# -- maps ---------------------------------------------------------------------

def test_btf_maps(features: BpfObject) -> None:
    btf = features.btf
    h = _map(features, "events_hash")
    assert (h.map_type, h.map_type_name, h.max_entries) == (1, "HASH", 1024)
    assert (h.key_size, h.value_size, h.map_flags, h.pinning) == (4, 32, 1, 1)
    assert btf.type(h.key_type_id).name == "key_t"
    assert btf.c_spelling(h.value_type_id) == "struct event"
    perf = _map(features, "perf")
    assert (perf.map_type_name, perf.key_size, perf.value_size) == ("PERF_EVENT_ARRAY", 4, 4)
    assert (perf.key_type_id, perf.value_type_id, perf.max_entries) == (0, 0, 0)
    rb = _map(features, "rb")
    assert (rb.map_type, rb.max_entries, rb.key_size, rb.value_size) == (27, 4096, 0, 0)
    bloom = _map(features, "bloom")
    assert (bloom.map_type_name, bloom.value_size, bloom.map_extra, bloom.numa_node) == (
        "BLOOM_FILTER", 8, 3, 1)


def test_map_in_map_and_prog_array(features: BpfObject) -> None:
    outer = _map(features, "outer")
    assert (outer.map_type_name, outer.max_entries, outer.key_size, outer.value_size) == (
        "ARRAY_OF_MAPS", 2, 4, 4)
    assert outer.inner is not None
    assert outer.inner.name == "outer.inner"
    assert (outer.inner.map_type_name, outer.inner.max_entries, outer.inner.value_size) == (
        "ARRAY", 4, 8)
    assert features.btf.type(outer.inner.value_type_id).name == "__u64"
    jmp = _map(features, "jmp")
    assert (jmp.map_type_name, jmp.value_size, jmp.inner) == ("PROG_ARRAY", 4, None)


def test_legacy_and_struct_ops_maps(features: BpfObject) -> None:
    old = _map(features, "old_map")
    assert old.source == "legacy"
    assert (old.map_type_name, old.key_size, old.value_size, old.max_entries) == (
        "ARRAY", 4, 8, 3)
    assert features.btf.type(old.key_type_id).name == "__u32"
    assert features.btf.type(old.value_type_id).name == "__u64"
    ops = _map(features, "ops")
    assert (ops.source, ops.map_type_name, ops.value_size) == ("struct_ops", "STRUCT_OPS", 16)
    assert features.btf.c_spelling(ops.value_type_id) == "struct my_ops"
    # libbpf's order: legacy maps, then .maps by offset, then struct_ops.
    assert [m.name for m in features.maps] == [
        "old_map", "inner1", "inner2", "outer", "events_hash", "perf", "rb", "jmp", "bloom",
        "ops"]


def _map_btf(members: list[tuple[str, str, int]]) -> tuple[Btf, int]:
    """A map definition struct; members are (name, "num"|"enum"|"ptr", value)."""
    b = BtfBuilder()
    i = b.int_("int", 4, signed=True)
    u64 = b.int_("u64", 8)
    specs = []
    for n, (name, how, value) in enumerate(members):
        if how == "num":
            t = b.ptr(b.array(i, i, value))
        elif how == "enum":
            t = b.enum64("", 8, [(f"v{n}", value)])
        else:
            t = b.ptr(u64)
        specs.append((name, t, 64 * n))
    sid = b.struct("", 8 * len(specs), specs)
    return parse_btf(b.build()), sid


def test_map_def_encodings() -> None:
    btf, sid = _map_btf([("type", "num", 30), ("map_extra", "enum", 1 << 40),
                         ("value", "ptr", 0), ("max_entries", "num", 7),
                         ("unknown_field", "num", 1)])
    m = parse_map_def(btf, "m", sid, inner=False)
    assert (m.map_type_name, m.map_extra, m.value_size, m.max_entries) == (
        "BLOOM_FILTER", 1 << 40, 8, 7)
    assert btf.type(m.value_type_id).name == "u64"


@pytest.mark.parametrize("members,message", [
    ([("pinning", "num", 2)], "invalid pinning value 2"),
    ([("value_size", "num", 4), ("value", "ptr", 0)], "conflicting value_size 4"),
    ([("key", "enum", 4)], "key spec is a ENUM64, not a pointer"),
    ([("type", "num", 1), ("values", "num", 0)], "'values' on a HASH map"),
    ([("max_entries", "ptr", 0)], "'max_entries' is a pointer to INT"),
])
def test_map_def_errors(members: list[tuple[str, str, int]], message: str) -> None:
    btf, sid = _map_btf(members)
    with pytest.raises(ObjectError, match=re.escape(f"map 'bad': {message}")):
        parse_map_def(btf, "bad", sid, inner=False)


# -- globals and DATASEC fix-ups ----------------------------------------------

def _readelf_symbols(path: Path) -> dict[str, tuple[int, int, str]]:
    """name -> (value, size, section index) of STT_OBJECT symbols, per llvm-readelf."""
    out = subprocess.run(["llvm-readelf", "-s", str(path)], capture_output=True, text=True,
                         check=True).stdout
    syms = {}
    for m in re.finditer(r"^\s*\d+:\s+([0-9a-f]+)\s+(\d+)\s+OBJECT\s+\w+\s+\w+\s+(\d+)\s+(\S+)$",
                         out, re.M):
        syms[m[4]] = (int(m[1], 16), int(m[2]), m[3])
    return syms


def _readelf_section_sizes(path: Path) -> dict[str, int]:
    out = subprocess.run(["llvm-readelf", "-S", "-W", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return {m[1]: int(m[2], 16) for m in
            re.finditer(r"^\s*\[\s*\d+\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)",
                        out, re.M)}


def test_globals(features: BpfObject) -> None:
    assert [s.name for s in features.sections] == [
        ".bss", ".data", ".data.custom", ".kconfig", ".rodata", ".rodata.custom"]
    data = _sec(features, ".data")
    assert _vars(data) == {"counter": (0, 4), "big_data": (8, 32), "aligned_buf": (64, 3),
                           "hidden_var": (68, 4), "hidden_static": (72, 4)}
    assert data.size == 76 and not data.readonly
    assert data.initial[:4] == (5).to_bytes(4, "little")
    assert data.initial[8:40] == b"".join(i.to_bytes(8, "little") for i in (1, 2, 3, 4))
    assert data.initial[64:67] == b"\1\2\3"
    linkage = {v.name: v.linkage for v in data.variables}
    # hidden visibility makes a global static, as libbpf >= 1.2 does.
    assert linkage == {"counter": 1, "big_data": 1, "aligned_buf": 1, "hidden_var": 0,
                       "hidden_static": 0}
    ro = _sec(features, ".rodata")
    assert ro.readonly and _vars(ro) == {"cfg_pid": (0, 4), "cfg_name": (4, 5)}
    assert ro.initial == (42).to_bytes(4, "little") + b"abcd\0"
    bss = _sec(features, ".bss")
    assert _vars(bss) == {"zeroed": (0, 8), "bss_event": (8, 32)}
    assert bss.initial == bytes(40)
    assert _vars(_sec(features, ".data.custom")) == {"custom_var": (0, 4)}
    assert _sec(features, ".data.custom").initial == (9).to_bytes(4, "little")
    rc = _sec(features, ".rodata.custom")
    assert rc.readonly and rc.initial == (11).to_bytes(8, "little")
    v = data.variables[1]
    assert features.btf.c_spelling(features.btf.skip_modifiers(v.type_id).type_id) == "__u64"
    assert features.btf.type(v.var_id).name == "big_data"


def test_kconfig_layout_as_libbpf(features: BpfObject) -> None:
    # libbpf: by alignment descending, then size ascending, then name.
    kc = _sec(features, ".kconfig")
    assert kc.readonly and kc.size == 21 and kc.initial == bytes(21)
    assert [(v.name, v.offset, v.size, v.linkage) for v in kc.variables] == [
        ("CONFIG_HZ", 0, 8, 1), ("LINUX_KERNEL_VERSION", 8, 4, 1),
        ("CONFIG_BPF_SYSCALL", 12, 1, 1), ("CONFIG_DEFAULT_HOSTNAME", 13, 8, 1)]


def test_datasec_fixup_matches_elf(features_o: Path, features: BpfObject) -> None:
    syms = _readelf_symbols(features_o)
    sizes = _readelf_section_sizes(features_o)
    for sec in features.sections:
        if sec.name == ".kconfig":
            continue
        assert sec.size == sizes[sec.name]
        assert features.btf.size_of(sec.datasec_type_id) == sizes[sec.name]
        for v in sec.variables:
            assert (v.offset, v.size) == syms[v.name][:2], v.name
    maps = next(t for t in features.btf.types if isinstance(t, Datasec) and t.name == ".maps")
    assert maps.size == sizes[".maps"]
    for vsi in maps.vars:
        var = features.btf.type(vsi.type_id)
        assert isinstance(var, Var) and vsi.offset == syms[var.name][0]


def test_file_btf_untouched(features: BpfObject) -> None:
    raw = features.file_btf
    assert raw is not features.btf
    for t in raw.types:
        if isinstance(t, Datasec) and t.name != ".kconfig":
            # clang writes size 0 and offset 0 for globals (statics get their offset).
            assert t.size == 0
            assert all(v.offset == 0 for v in t.vars if raw.type(v.type_id).linkage != 0)
    hidden = [t for t in raw.types if isinstance(t, Var) and t.name == "hidden_var"]
    assert hidden[0].linkage == 1


@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool not installed")
def test_datasec_fixup_matches_bpftool_skeleton(tmp_path: Path) -> None:
    """bpftool's skeleton lays out each data section from libbpf's fixed-up
    DATASEC, with ``char __padN[k]`` where a variable is not at the natural
    next offset.  Our offsets must reproduce its order and padding."""
    obj_path = compile_bpf(FEATURES, tmp_path / "f.bpf.o", cflags=["-DNO_LEGACY_MAP"])
    skel = subprocess.run(["bpftool", "gen", "skeleton", str(obj_path), "name", "f"],
                          capture_output=True, text=True, check=True).stdout
    obj = read_input(str(obj_path))
    raw_linkage = {t.name: t.linkage for t in obj.file_btf.types if isinstance(t, Var)}
    checked = 0
    for sec in obj.sections:
        ident = sec.name.lstrip(".").replace(".", "_")
        body = re.search(rf"struct f__{ident} {{\n(.*?)\n\t}} \*{ident};", skel, re.S)
        assert body, sec.name
        fields = re.findall(r"^\s*(?:char __pad\d+\[(\d+)\]|.*?(\w+)(?:\[\d+\])*);$",
                            body[1], re.M)
        ours = [v for v in sec.variables if raw_linkage[v.name] != 0]
        names = [name for pad, name in fields if not pad]
        assert names == [v.name for v in ours], sec.name
        end, pad, it = 0, 0, iter(ours)
        for pad_s, _name in fields:
            if pad_s:
                pad = int(pad_s)
                continue
            v = next(it)
            align = obj.btf.align_of(v.type_id)
            expect = end + pad if pad else -(-end // align) * align
            assert v.offset == expect, (sec.name, v.name)
            end, pad = v.offset + v.size, 0
            checked += 1
    assert checked == 14


def test_license_version_btf_ext(features: BpfObject) -> None:
    assert features.license == "Dual BSD/GPL"
    assert features.kern_version == 0x050A03
    assert features.btf_ext[:2] == b"\x9f\xeb"
    info = features.btf_ext_info
    assert info is not None
    assert info.func_info["kprobe/do_unlinkat"] == 2
    assert info.line_info["tracepoint/syscalls/sys_enter_execve"] > 0


def test_big_endian_object(tmp_path: Path) -> None:
    path = compile_bpf(FEATURES, tmp_path / "be.bpf.o", target="bpfeb")
    obj = read_input(str(path))
    assert obj.byteorder == "big" and obj.btf.byteorder == "big"
    assert obj.kern_version == 0x050A03
    assert _map(obj, "old_map").value_size == 8
    data = _sec(obj, ".data")
    assert data.initial[:4] == (5).to_bytes(4, "big")
    assert _vars(data)["aligned_buf"] == (64, 3)
    assert _map(obj, "events_hash").max_entries == 1024


def test_clang19_object(tmp_path: Path) -> None:
    path = compile_bpf(FEATURES, tmp_path / "c19.bpf.o", clang="clang-19")
    obj = read_input(str(path))
    assert _vars(_sec(obj, ".rodata")) == {"cfg_pid": (0, 4), "cfg_name": (4, 5)}
    assert _map(obj, "outer").inner is not None


# -- raw and split BTF ----------------------------------------------------------

VMLINUX = Path("/sys/kernel/btf/vmlinux")


@pytest.mark.skipif(not VMLINUX.exists(), reason="kernel has no /sys/kernel/btf/vmlinux")
def test_raw_vmlinux() -> None:
    obj = read_input(str(VMLINUX))
    assert not obj.is_elf and obj.programs == [] and obj.maps == [] and obj.sections == []
    assert obj.btf.find("task_struct", Kind.STRUCT)
    assert obj.file_btf is obj.btf


def test_split_btf(tmp_path: Path) -> None:
    base = BtfBuilder()
    u32 = base.int_("u32", 4)
    split = BtfBuilder(base=base)
    pair = split.struct("pair", 8, [("a", u32, 0), ("b", u32, 32)])
    (tmp_path / "base.btf").write_bytes(base.build())
    (tmp_path / "mod.btf").write_bytes(split.build())
    btf = read_btf(str(tmp_path / "mod.btf"), str(tmp_path / "base.btf"))
    assert btf.start_id == 2 and btf.size_of(pair) == 8
    assert btf.type(pair).name == "pair" and btf.type(u32).name == "u32"
    obj = read_input(str(tmp_path / "mod.btf"), read_btf(str(tmp_path / "base.btf")))
    assert obj.btf.c_spelling(pair) == "struct pair"
    # Without its base the member reference is out of range; the error names the file.
    with pytest.raises(BtfError) as e:
        read_btf(str(tmp_path / "mod.btf"))
    assert e.value.path == str(tmp_path / "mod.btf")
    # A broken base is blamed on the base.
    (tmp_path / "bad.btf").write_bytes(b"\x9f\xeb\x01")
    with pytest.raises(BtfError) as e:
        read_btf(str(tmp_path / "mod.btf"), str(tmp_path / "bad.btf"))
    assert e.value.path == str(tmp_path / "bad.btf")


# -- corpus ---------------------------------------------------------------------

def _by_stem(objs: list[Path], stem: str) -> Path:
    return next(p for p in objs if p.name == f"{stem}.bpf.o")


def test_corpus_execsnoop(corpus_objects: list[Path]) -> None:
    obj = read_input(str(_by_stem(corpus_objects, "execsnoop")))
    maps = {m.name: m for m in obj.maps}
    assert set(maps) == {"cgroup_map", "execs", "events"}
    execs = maps["execs"]
    assert (execs.map_type_name, execs.max_entries, execs.key_size) == ("HASH", 10240, 4)
    assert obj.btf.c_spelling(execs.key_type_id) == "pid_t"
    assert obj.btf.c_spelling(execs.value_type_id) == "struct event"
    assert execs.value_size == obj.btf.size_of(execs.value_type_id) == 7720
    assert maps["events"].map_type_name == "PERF_EVENT_ARRAY"
    assert (maps["events"].key_size, maps["events"].value_size) == (4, 4)
    assert maps["cgroup_map"].map_type_name == "CGROUP_ARRAY"
    assert [(p.name, p.attach_kind, p.attach_target) for p in obj.programs] == [
        ("tracepoint__syscalls__sys_enter_execve", "tracepoint", "syscalls/sys_enter_execve"),
        ("tracepoint__syscalls__sys_exit_execve", "tracepoint", "syscalls/sys_exit_execve")]
    assert obj.license == "GPL"


def test_corpus_opensnoop_rodata(corpus_objects: list[Path]) -> None:
    obj = read_input(str(_by_stem(corpus_objects, "opensnoop")))
    ro = _sec(obj, ".rodata")
    assert ro.size == 13
    assert _vars(ro) == {"targ_pid": (0, 4), "targ_tgid": (4, 4), "targ_uid": (8, 4),
                         "targ_failed": (12, 1)}
    assert [obj.btf.c_spelling(obj.btf.skip_qualifiers(v.type_id).id)
            for v in ro.variables] == ["pid_t", "pid_t", "uid_t", "bool"]


def test_corpus_all_objects_fixups(corpus_objects: list[Path]) -> None:
    """Every corpus object reads, and every global variable sits where its
    ELF symbol says (the check libbpf's fix-up performs)."""
    total = 0
    for path in corpus_objects:
        obj = read_object_bytes(str(path), path.read_bytes())
        assert obj.programs and obj.license
        syms = _readelf_symbols(path)
        for sec in obj.sections:
            if sec.name == ".kconfig":
                continue
            for v in sec.variables:
                assert (v.offset, v.size) == syms[v.name][:2], (path.name, v.name)
                total += 1
    assert total > 100


def test_object_errors_name_the_problem(tmp_path: Path, features_o: Path) -> None:
    nobtf = compile_bpf("int x = 1;\n", tmp_path / "nobtf.bpf.o", cflags=["-g0"])
    with pytest.raises(ObjectError, match=r"no \.BTF section.*clang -g") as e:
        read_input(str(nobtf))
    assert e.value.path == str(nobtf)
    data = features_o.read_bytes()
    with pytest.raises(ObjectError, match="truncated ELF"):
        read_object_bytes("x", data[: len(data) // 2])


@pytest.mark.slow
def test_damaged_objects_raise_only_btfgen_errors(features_o: Path) -> None:
    """Random byte damage anywhere (headers, symbols, .BTF, .BTF.ext, map
    definitions) gives a BtfgenError or a readable object, never another
    exception -- pyelftools' own exceptions included."""
    data = features_o.read_bytes()
    elf = ELFFile(io.BytesIO(data))
    regions = [(0, 64), (int(elf["e_shoff"]), len(data) - int(elf["e_shoff"]))]
    for name in (".BTF", ".BTF.ext", ".symtab", ".strtab", ".maps", "maps", ".data"):
        sec = elf.get_section_by_name(name)
        assert sec is not None
        regions.append((int(sec["sh_offset"]), int(sec["sh_size"])))
    rnd = random.Random(1234)
    failures = 0
    for _ in range(400):
        b = bytearray(data)
        off, size = rnd.choice(regions)
        for _ in range(rnd.choice((1, 2, 4))):
            b[off + rnd.randrange(size)] = rnd.choice((0, 1, 0xFF, rnd.randrange(256)))
        try:
            format_info(read_object_bytes("damaged.o", bytes(b)))
        except BtfgenError as e:
            failures += 1
            assert str(e) and "\n" not in str(e)
    assert 50 < failures < 400


CORE_SRC = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
struct task_struct { int pid; int tgid; } __attribute__((preserve_access_index));
struct event { int tgid; };
struct event *keep;
SEC("tracepoint/x") int f(void *ctx)
{
    struct task_struct *t = (void *)bpf_get_current_task();
    return BPF_CORE_READ(t, tgid) + BPF_CORE_READ(t, pid);
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.mark.parametrize("target", ["bpfel", "bpfeb"])
def test_core_relocation_roots_from_btf_ext(tmp_path: Path, target: str) -> None:
    """``.BTF.ext`` is read once: its CO-RE relocation roots are what the record
    resolver leaves out as kernel types."""
    from btfgen.discovery.resolve import btf_record_pool, core_relo_type_ids

    obj = read_input(str(compile_bpf(CORE_SRC, tmp_path / "core.bpf.o", target=target)))
    assert obj.btf_ext_info is not None
    ids = obj.btf_ext_info.core_relo_type_ids
    assert len(ids) == 2 and {obj.btf.type(i).name for i in ids} == {"task_struct"}
    assert core_relo_type_ids(obj) == ids
    assert [t.name for t in btf_record_pool(obj)] == ["event"]
