"""Differential test: random C types, laid out by clang (BPF target, via BTF)
and by gcc (x86-64 host), must agree field by field through the generated
decoders.

Hypothesis writes struct/union definitions (nesting, bitfields signed and
unsigned, unions, anonymous members, arrays, enums and enum64, packed and
aligned).  One C file per example is compiled twice with ``-target bpf``
(clang and clang-19) into objects we generate modules from, and once with gcc
into a host program that sets every field to a known value and writes the
bytes.  Decoding those bytes must give the known values, and re-encoding must
give the same bytes.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.build import compile_bpf
from tests.helpers.gen import generate

#: (C type, size, signed) of plain integers.
INTS = [("signed char", 1, True), ("unsigned char", 1, False), ("short", 2, True),
        ("unsigned short", 2, False), ("int", 4, True), ("unsigned int", 4, False),
        ("long long", 8, True), ("unsigned long long", 8, False)]


@dataclass
class Check:
    """A value the host program sets and the decoder must return."""

    path: list[str | int]  # attribute names / list indexes from the record
    value: Any
    #: An enum value: clang 14 records no enum signedness in BTF (kind_flag is
    #: always 0, "unsigned"), so there a negative value reads back unsigned.
    enum_size: int = 0

    def expected(self, clang: str) -> Any:
        if self.enum_size and clang == "clang" and self.value < 0:
            return self.value & ((1 << 8 * self.enum_size) - 1)
        return self.value


@dataclass
class Example:
    """The C source of one example and what to check."""

    defs: list[str] = field(default_factory=list)
    #: (C tag, assignment statements, checks) per top-level type.
    tops: list[tuple[str, list[str], list[Check]]] = field(default_factory=list)
    enum64: bool = False
    n: int = 0

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"


def _lit(v: int) -> str:
    return f"({v}LL)" if v < 0 else f"({v}ULL)"


class Builder:
    """Draws C types and the assignments that fill them."""

    def __init__(self, data: st.DataObject, ex: Example) -> None:
        self.draw = data.draw
        self.ex = ex
        self.enums: list[tuple[str, list[tuple[str, int]], bool]] = []

    # -- types: each returns (declaration with {} for the declarator, filler) --

    def enum(self) -> tuple[str, Any]:
        big = self.draw(st.booleans()) and self.draw(st.booleans())
        name = self.ex.name("e")
        lo, hi = (-(2**40), 2**40) if big else (-1000, 1000)
        values = self.draw(st.lists(st.integers(lo, hi), min_size=1, max_size=4, unique=True))
        if big:
            values[0] = 2**33 + values[0] % 1000  # needs 64 bits: BTF ENUM64
            self.ex.enum64 = True
        members = [(f"{name.upper()}_{i}", v) for i, v in enumerate(values)]
        body = ", ".join(f"{m} = {_lit(v)}" for m, v in members)
        self.ex.defs.append(f"enum {name} {{ {body} }};")
        signed = min(values) < 0
        size = 8 if big else 4

        def fill(c: str, path: list[str | int], out: list[str], checks: list[Check]) -> None:
            known = self.draw(st.booleans())
            if known:
                v = self.draw(st.sampled_from(values))
            elif size == 8:
                v = self.draw(st.integers(-(2**40) if signed else 0, 2**40))
            else:
                v = self.draw(st.integers(-(2**31), 2**31 - 1) if signed
                              else st.integers(0, 2**31 - 1))
            out.append(f"{c} = (enum {name}){_lit(v)};")
            checks.append(Check(path, v, size))

        return f"enum {name} {{}}", fill

    def scalar(self) -> tuple[str, Any]:
        kind = self.draw(st.sampled_from(["int", "int", "int", "bool", "float", "double", "ptr",
                                          "enum"]))
        if kind == "enum":
            return self.enum()
        if kind == "int":
            ctype, size, signed = self.draw(st.sampled_from(INTS))
            bits = size * 8
            lo, hi = (-(2 ** (bits - 1)) + 1, 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)

            def fill_int(c: str, path: list[str | int], out: list[str],
                         checks: list[Check]) -> None:
                v = self.draw(st.integers(lo, hi))
                out.append(f"{c} = ({ctype}){_lit(v)};")
                checks.append(Check(path, v))

            return f"{ctype} {{}}", fill_int
        if kind == "bool":
            def fill_bool(c: str, path: list[str | int], out: list[str],
                          checks: list[Check]) -> None:
                v = self.draw(st.booleans())
                out.append(f"{c} = {int(v)};")
                checks.append(Check(path, v))

            return "_Bool {}", fill_bool
        if kind == "ptr":
            def fill_ptr(c: str, path: list[str | int], out: list[str],
                         checks: list[Check]) -> None:
                v = self.draw(st.integers(0, 2**64 - 1))
                out.append(f"{c} = (void *){_lit(v)};")
                checks.append(Check(path, v))

            return "void *{}", fill_ptr

        def fill_float(c: str, path: list[str | int], out: list[str],
                       checks: list[Check]) -> None:
            v = self.draw(st.integers(-1000, 1000)) + 0.5
            out.append(f"{c} = {v!r};")
            checks.append(Check(path, v))

        return f"{kind} {{}}", fill_float

    def chars(self) -> tuple[str, Any]:
        n = self.draw(st.integers(1, 12))

        def fill(c: str, path: list[str | int], out: list[str], checks: list[Check]) -> None:
            s = self.draw(st.text("abcxyz", max_size=n))
            if s:
                out.append(f'memcpy({c}, "{s}", {len(s)});')
            checks.append(Check(path, s.encode()))

        return f"char {{}}[{n}]", fill

    def array(self, depth: int) -> tuple[str, Any]:
        decl, elem = self.member_type(depth + 1, allow_array=False)
        dims = self.draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))
        suffix = "".join(f"[{d}]" for d in dims)

        def fill(c: str, path: list[str | int], out: list[str], checks: list[Check]) -> None:
            def rec(cc: str, pp: list[str | int], level: int) -> None:
                if level == len(dims):
                    elem(cc, pp, out, checks)
                    return
                for i in range(dims[level]):
                    rec(f"{cc}[{i}]", [*pp, i], level + 1)

            rec(c, path, 0)

        return decl.replace("{}", "{}" + suffix), fill

    def record(self, depth: int, union: bool, named: bool = True) -> tuple[str, Any]:
        """A struct/union type; ``named=False`` gives an inline anonymous body."""
        kw = "union" if union else "struct"
        n_members = self.draw(st.integers(1, 4))
        members: list[tuple[str | None, Any]] = []
        lines = []
        for _ in range(n_members):
            form = self.draw(st.sampled_from(
                ["plain", "plain", "bits", "anon"] if depth < 2 else ["plain", "bits"]))
            if form == "anon":
                inner_union = self.draw(st.booleans())
                body, fill = self.record(depth + 1, inner_union, named=False)
                lines.append(f"    {body};")
                members.append((None, fill))
                continue
            mname = self.ex.name("m")
            if form == "bits":
                ctype, size, signed = self.draw(st.sampled_from(INTS[:6]))
                width = self.draw(st.integers(1, size * 8))
                lines.append(f"    {ctype} {mname} : {width};")
                lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0,
                                                                                      2**width - 1)

                def fill_bits(c: str, path: list[str | int], out: list[str],
                              checks: list[Check], lo: int = lo, hi: int = hi) -> None:
                    v = self.draw(st.integers(lo, hi))
                    out.append(f"{c} = {_lit(v)};")
                    checks.append(Check(path, v))

                members.append((mname, fill_bits))
                continue
            decl, fill = self.member_type(depth + 1)
            align = ""
            if self.draw(st.integers(0, 5)) == 0:
                align = f" __attribute__((aligned({self.draw(st.sampled_from([2, 8, 16]))})))"
            lines.append(f"    {decl.format(mname)}{align};")
            members.append((mname, fill))
        packed = self.draw(st.integers(0, 3)) == 0
        attrs = " __attribute__((packed))" if packed else ""
        if self.draw(st.integers(0, 5)) == 0:
            attrs += f" __attribute__((aligned({self.draw(st.sampled_from([8, 16]))})))"
        body = "{\n" + "\n".join(lines) + "\n}"

        def fill_record(c: str, path: list[str | int], out: list[str],
                        checks: list[Check]) -> None:
            chosen = members[:1] if union else members  # a union: only its first member
            for mname, fill in chosen:
                if mname is None:  # anonymous: its fields are the parent's, in C and Python
                    fill(c, path, out, checks)
                else:
                    fill(f"{c}.{mname}", [*path, mname], out, checks)

        if not named:
            return f"{kw}{attrs} {body}", fill_record
        tag = self.ex.name("u" if union else "s")
        self.ex.defs.append(f"{kw}{attrs} {tag} {body};")
        return f"{kw} {tag} {{}}", fill_record

    def member_type(self, depth: int, allow_array: bool = True) -> tuple[str, Any]:
        choices = ["scalar", "scalar", "chars"]
        if allow_array:
            choices.append("array")
        if depth < 3:
            choices += ["struct", "union"]
        kind = self.draw(st.sampled_from(choices))
        if kind == "scalar":
            return self.scalar()
        if kind == "chars":
            return self.chars()
        if kind == "array":
            return self.array(depth)
        return self.record(depth, kind == "union")

    def top(self) -> None:
        decl, fill = self.record(0, self.draw(st.integers(0, 4)) == 0)
        tag = decl.replace(" {}", "")
        out: list[str] = []
        checks: list[Check] = []
        fill("v", [], out, checks)
        self.ex.tops.append((tag, out, checks))


HOST_MAIN = """
#include <stdio.h>
#include <string.h>
{defs}
int main(void) {{
{blocks}
    return 0;
}}
"""


def _host_bytes(ex: Example, tmp: Path) -> list[bytes]:
    blocks = []
    for tag, stmts, _ in ex.tops:
        body = "\n".join(f"        {s}" for s in stmts)
        blocks.append(f"    {{ {tag} v; unsigned n = sizeof v; memset(&v, 0, sizeof v);\n"
                      f"{body}\n        fwrite(&n, 4, 1, stdout); fwrite(&v, 1, n, stdout); }}")
    src = tmp / "host.c"
    src.write_text(HOST_MAIN.format(defs="\n".join(ex.defs), blocks="\n".join(blocks)))
    exe = tmp / "host"
    subprocess.run(["gcc", "-O1", "-w", "-o", str(exe), str(src)], check=True,
                   capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True).stdout
    chunks = []
    while out:
        n = int.from_bytes(out[:4], "little")
        chunks.append(out[4:4 + n])
        out = out[4 + n:]
    return chunks


def _get(value: Any, path: list[str | int]) -> Any:
    for step in path:
        value = value[step] if isinstance(step, int) else getattr(value, step)
    return value


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@pytest.mark.slow
@given(st.data())
def test_layouts_agree_with_gcc(data: st.DataObject) -> None:
    ex = Example()
    b = Builder(data, ex)
    for _ in range(data.draw(st.integers(1, 3))):
        b.top()
    globals_ = "\n".join(f"{tag} g{i};" for i, (tag, _, _) in enumerate(ex.tops))
    bpf_src = "\n".join(ex.defs) + "\n" + globals_ + "\n"
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        host = _host_bytes(ex, tmp)
        clangs = ["clang-19"] if ex.enum64 else ["clang", "clang-19"]
        for clang in clangs:
            obj = compile_bpf(bpf_src, tmp / f"ex_{clang}.bpf.o", clang=clang)
            mod = generate(obj, tmp / f"ex_{clang.replace('-', '_')}.py")
            for (tag, _, checks), raw in zip(ex.tops, host, strict=True):
                cls = mod.TYPES[tag]
                assert cls.SIZE == len(raw), (clang, tag, bpf_src)
                assert mod.ffi.sizeof(tag) == len(raw)
                value = cls.from_bytes(raw)
                for c in checks:
                    assert _get(value, c.path) == c.expected(clang), (clang, tag, c.path, bpf_src)
                assert value.to_bytes() == raw, (clang, tag, bpf_src)
                # repr: a union's float member may read back as NaN, never == itself
                assert repr(cls.from_bytes(value.to_bytes())) == repr(value)
