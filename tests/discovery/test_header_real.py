"""``--header`` on real tool headers: libbpf-tools' opensnoop.h and tcpconnect.h,
libbpf-bootstrap's bootstrap.h (equivalents written here) parse without a
wrapper: the kernel's fixed-width and common typedefs are predefined, other
names come from the object's BTF; layouts equal what clang gives; errors are
one line with file:line; pathological headers fail fast in one line."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from btfgen.btf_extend import BtfExtender
from btfgen.btf_model import Btf, Kind, Struct, Union
from btfgen.discovery.header import HeaderError, HeaderTypes
from btfgen.elf.reader import read_input
from tests.helpers.build import compile_bpf, run_btfgen

OPENSNOOP_H = """\
/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef __OPENSNOOP_H
#define __OPENSNOOP_H
#define TASK_COMM_LEN 16
#define NAME_MAX 255
#define INVALID_UID ((uid_t)-1)
struct args_t {
\tconst char *fname;
\tint flags;
\t__u32 mode;
};
struct event {
\t__u64 ts;
\tpid_t pid;
\tuid_t uid;
\tint ret;
\tint flags;
\t__u32 mode;
\t__u64 callers[2];
\tchar comm[TASK_COMM_LEN];
\tchar fname[NAME_MAX];
};
#endif
"""
TCPCONNECT_H = """\
#ifndef __TCPCONNECT_H
#define __TCPCONNECT_H
#define TASK_COMM_LEN 16
#define MAX_PORTS 64
struct ipv4_flow_key { __u32 saddr; __u32 daddr; __u16 dport; };
struct ipv6_flow_key { __u8 saddr[16]; __u8 daddr[16]; __u16 dport; };
struct event {
\tunion { __u32 saddr_v4; __u8 saddr_v6[16]; };
\tunion { __u32 daddr_v4; __u8 daddr_v6[16]; };
\tchar task[TASK_COMM_LEN];
\t__u64 ts_us;
\t__u32 af;
\t__u32 pid;
\t__u32 uid;
\t__u16 dport;
};
#endif
"""
BOOTSTRAP_H = """\
#ifndef __BOOTSTRAP_H
#define __BOOTSTRAP_H
#define TASK_COMM_LEN 16
#define MAX_FILENAME_LEN 127
struct event {
\tint pid;
\tint ppid;
\tunsigned exit_code;
\tunsigned long long duration_ns;
\tchar comm[TASK_COMM_LEN];
\tchar filename[MAX_FILENAME_LEN];
\tbool exit_event;
};
#endif
"""
#: Kernel types by value, and a typedef only the object's BTF defines.
KERNEL_H = """\
struct flow6 {
\tstruct in6_addr saddr;
\t__be16 sport;
\t__kernel_ulong_t cookie;
\tsa_family_t family;
};
"""
#: What vmlinux.h (or these headers) gives the BPF program before the tool's header.
PRELUDE = """\
#include <linux/types.h>
#include <linux/in6.h>
#include <stdbool.h>
typedef int pid_t; typedef unsigned int uid_t; typedef unsigned short sa_family_t;
"""
PROG = """\
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } events SEC(".maps");
struct in6_addr g_addr; __kernel_ulong_t g_ulong;
SEC("xdp") int prog(void *ctx) { return 2; }
"""
HEADERS = {"opensnoop": OPENSNOOP_H, "tcpconnect": TCPCONNECT_H, "bootstrap": BOOTSTRAP_H,
           "kernel": KERNEL_H}
ROOTS = {"opensnoop": "struct event", "tcpconnect": "struct event",
         "bootstrap": "struct event", "kernel": "struct flow6"}


def layout(btf: Btf, tid: int) -> list[tuple[str, int, int]]:
    """(name, bit offset, size) of every member, nested anonymous ones flattened."""
    t = btf.skip_modifiers(tid)
    assert isinstance(t, (Struct, Union))
    out = []
    for m in t.members:
        inner = btf.skip_modifiers(m.type_id)
        if not m.name and isinstance(inner, (Struct, Union)):
            out += [(n, m.bit_offset + o, s) for n, o, s in layout(btf, inner.id)]
        else:
            out.append((m.name, m.bit_offset, btf.size_of(m.type_id)))
    return out


@pytest.mark.parametrize("clang", ["clang", "clang-19"])
@pytest.mark.parametrize("name", list(HEADERS))
def test_real_header_layout_equals_clangs(tmp_path: Path, name: str, clang: str) -> None:
    header = tmp_path / f"{name}.h"
    header.write_text(HEADERS[name])
    # clang's layout: the header after the kernel's typedefs, the type in a global
    word, tag = ROOTS[name].split()
    ref_obj = compile_bpf(PRELUDE + f'#include "{header}"\n' + PROG +
                          f"{word} {tag} g_root;\n", tmp_path / "ref.bpf.o", clang=clang)
    ref = read_input(str(ref_obj)).btf
    (want,) = [t for t in ref.find(tag, Kind.STRUCT)]
    # btfgen's from the header alone, on a stripped object that lacks the type
    obj = compile_bpf(PRELUDE + PROG, tmp_path / "stripped.bpf.o", clang=clang)
    subprocess.run(["llvm-strip", "-g", str(obj)], check=True)
    btf = read_input(str(obj)).btf
    assert not btf.find(tag, Kind.STRUCT)
    h = HeaderTypes(str(header), BtfExtender(btf))
    tid = h.lookup(ROOTS[name])
    ext = h.ext.finish()
    assert h.size_of(tid) == ref.size_of(want.id)
    assert layout(ext, tid) == layout(ref, want.id)
    if name == "kernel":  # struct in6_addr and __kernel_ulong_t are the object's own
        t = ext.type(tid)
        assert isinstance(t, Struct) and t.members[0].type_id < ext.start_id
        assert btf.type(t.members[2].type_id).name == "__kernel_ulong_t"


def test_header_types_a_map_through_the_cli(tmp_path: Path) -> None:
    (tmp_path / "opensnoop.h").write_text(OPENSNOOP_H)
    obj = compile_bpf(PRELUDE + PROG, tmp_path / "p.bpf.o")
    subprocess.run(["llvm-strip", "-g", str(obj)], check=True)
    r = run_btfgen("info", obj, "--header", tmp_path / "opensnoop.h", "--event",
                   "events=struct event", check=True)
    assert "record: struct event, 320 bytes [--event" in r.stdout


def test_header_own_typedef_wins(tmp_path: Path) -> None:
    (tmp_path / "h.h").write_text("typedef long pid_t;\nstruct e { pid_t p; };\n")
    obj = compile_bpf(PRELUDE + PROG, tmp_path / "p.bpf.o")
    h = HeaderTypes(str(tmp_path / "h.h"), BtfExtender(read_input(str(obj)).btf))
    assert h.size_of(h.lookup("struct e")) == 8


@pytest.mark.parametrize(("text", "message"), [
    ("struct e {\n\tint a;\n\tfoo_t b;\n};\n", r"cannot parse: {h}:3: unknown type name 'foo_t'"),
    ("struct e {\n\tint a;\n\tchar x[-5];\n};\n", r"{h}:3: array size -5 is negative"),
    ("struct e {\n\tint a;\n\tchar x[1UL << 40];\n};\n", r"{h}:3: array size \d+ is too large"),
    ("#define A0 x x\n" + "".join(f"#define A{i} A{i - 1} A{i - 1}\n" for i in range(1, 41))
     + "A40\n", r"preprocessing expands without bound \(more than 16 MB or 10 s\):"
     r" self-referencing macros\?"),
])
def test_bad_headers_fail_in_one_line(tmp_path: Path, text: str, message: str) -> None:
    header = tmp_path / "bad.h"
    header.write_text(text)
    obj = compile_bpf(PRELUDE + PROG, tmp_path / "p.bpf.o")
    r = run_btfgen("info", obj, "--header", header, "--event", "events=struct e")
    assert r.returncode == 1
    assert len(r.stderr.splitlines()) == 1, r.stderr
    import re

    assert re.fullmatch(f"btfgen: {header}: " + message.format(h=header) + ".*\n", r.stderr), \
        r.stderr
    with pytest.raises(HeaderError):
        HeaderTypes(str(header), BtfExtender(read_input(str(obj)).btf)).lookup("struct e")


@pytest.mark.slow
def test_wide_struct(tmp_path: Path) -> None:
    """A 16k-member struct generates (linear work: the overlap test bisects)."""
    n = 16384
    (tmp_path / "w.h").write_text(
        "struct wide {\n" + "".join(f"  int m{i};\n" for i in range(n)) + "};\n")
    obj = compile_bpf(PRELUDE + PROG, tmp_path / "p.bpf.o")
    out = tmp_path / "w.py"
    r = run_btfgen("gen", obj, "--header", tmp_path / "w.h", "--event", "events=struct wide",
                   "-o", out, check=True)
    assert r.returncode == 0 and f"    m{n - 1}: int = 0" in out.read_text()
