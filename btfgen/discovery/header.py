"""Record types from a C header (``--header file.h``), for stripped objects.

The header goes through the C preprocessor (``clang -E -target bpf``, else
``cpp``), GNU attributes are taken out (``packed`` and ``aligned(N)`` become
marker members the layout code reads), and pycparser parses the rest.  Types
are converted on demand into :mod:`btfgen.btf_model` types in a
:class:`~btfgen.btf_extend.BtfExtender`, laid out as the BPF target does:
LP64, natural alignment, System V bitfield placement, ``packed``/``aligned``
honoured.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from typing import Any

from pycparser import c_ast, c_parser

from btfgen.btf_extend import BtfExtender
from btfgen.btf_layout import CField, RecordSim, natural_offset
from btfgen.btf_model import (
    Array,
    Const,
    Enum,
    Enum64,
    EnumValue,
    Float,
    Fwd,
    Kind,
    Member,
    Ptr,
    Struct,
    Typedef,
    Union,
    Volatile,
)
from btfgen.errors import BtfgenError

_PACKED = "__btfgen_packed__"
_ALIGN = "__btfgen_align_"  # + N + "__": the enclosing struct's alignment
_MALIGN = "__btfgen_malign_"  # + N + "__": the previous member's alignment
_MAX_DEPTH = 256

#: BPF (LP64) base types: canonical name -> (size, signed, is_char, is_bool, is_float)
_BASE: dict[str, tuple[int, bool, bool, bool, bool]] = {
    "char": (1, True, True, False, False),
    "signed char": (1, True, True, False, False),
    "unsigned char": (1, False, True, False, False),
    "short": (2, True, False, False, False),
    "unsigned short": (2, False, False, False, False),
    "int": (4, True, False, False, False),
    "unsigned int": (4, False, False, False, False),
    "long": (8, True, False, False, False),
    "unsigned long": (8, False, False, False, False),
    "long long": (8, True, False, False, False),
    "unsigned long long": (8, False, False, False, False),
    "_Bool": (1, False, False, True, False),
    "float": (4, False, False, False, True),
    "double": (8, False, False, False, True),
    "long double": (8, False, False, False, True),
}

_PREDEFS = (
    "-D__extension__=", "-D__inline__=inline", "-D__inline=inline", "-D__signed__=signed",
    "-D__restrict=restrict", "-D__restrict__=restrict", "-D__volatile__=volatile",
    "-D__const=const", "-D__asm__(...)=", "-D__asm(...)=", "-Dasm(...)=",
    "-D__builtin_va_list=void *", "-D__thread=",
)


#: Typedefs a tool's header uses without defining (vmlinux.h or <linux/types.h>
#: defines them before it in the BPF program): the kernel's fixed-width types and
#: common ones, as the BPF target (LP64) has them.  A header's own definition wins.
PREDEFINED = {
    **{f"__u{n}": f"unsigned {c}" for n, c in ((8, "char"), (16, "short"), (32, "int"),
                                                (64, "long long"))},
    **{f"__s{n}": f"signed {c}" for n, c in ((8, "char"), (16, "short"), (32, "int"),
                                              (64, "long long"))},
    **{f"u{n}": f"unsigned {c}" for n, c in ((8, "char"), (16, "short"), (32, "int"),
                                              (64, "long long"))},
    **{f"s{n}": f"signed {c}" for n, c in ((8, "char"), (16, "short"), (32, "int"),
                                            (64, "long long"))},
    **{f"__be{n}": f"__u{n}" for n in (16, 32, 64)},
    **{f"__le{n}": f"__u{n}" for n in (16, 32, 64)},
    "__wsum": "__u32", "__sum16": "__u16",
    "bool": "_Bool", "pid_t": "int", "uid_t": "unsigned int", "gid_t": "unsigned int",
    "size_t": "unsigned long", "ssize_t": "long", "off_t": "long", "loff_t": "long long",
    "dev_t": "unsigned int", "ino_t": "unsigned long", "mode_t": "unsigned int",
    "umode_t": "unsigned short", "time_t": "long", "clockid_t": "int", "key_t": "int",
    "sa_family_t": "unsigned short", "uintptr_t": "unsigned long", "intptr_t": "long",
    **{f"uint{n}_t": f"__u{n}" for n in (8, 16, 32, 64)},
    **{f"int{n}_t": f"__s{n}" for n in (8, 16, 32, 64)},
}
#: Largest preprocessed header, and the preprocessor's time and memory: a few
#: lines of self-doubling macros expand without end.
MAX_PREPROCESSED = 16 << 20
PREPROCESS_SECONDS = 10
PREPROCESS_MEMORY = 2 << 30


class HeaderError(BtfgenError):
    """The header cannot be preprocessed or parsed (one-line message; ``path`` is
    the header, so the CLI names it)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


_PRELUDE = "<btfgen predefined>"
_IDENT = re.compile(r"\b[A-Za-z_]\w*\b")
_C_WORDS = frozenset("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while _Bool _Complex""".split())


def _where(node: Any) -> str:
    """``file:line: `` of a pycparser node, if it knows."""
    c = getattr(node, "coord", None)
    return f"{c.file}:{c.line}: " if c is not None and c.line else ""


def _parse_error(e: Exception, prelude: str, text: str, path: str) -> str:
    """One line for a pycparser failure, with the header's file:line.  pycparser
    says "Invalid specifier list" without a place for an unknown type name:
    the place is then found by parsing growing prefixes of the declarations."""
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if re.match(r"[^:]+:\d+:", msg):
        return f"cannot parse: {msg}"
    where, name = _locate(prelude, text)
    if name:
        return f"cannot parse: {where}unknown type name '{name}'"
    return f"cannot parse: {where}{msg.removeprefix(path + ': ')}"


def _declarations(text: str) -> list[int]:
    """Offsets where the top-level declarations of ``text`` end."""
    ends, depth = [], 0
    for i, ch in enumerate(text):
        if ch in "{(":
            depth += 1
        elif ch in "})":
            depth -= 1
        elif ch == ";" and depth <= 0:
            ends.append(i + 1)
    return ends


def _locate(prelude: str, text: str) -> tuple[str, str]:
    """(``file:line: ``, unknown type name) of the first declaration of ``text``
    pycparser refuses, by bisecting on parsed prefixes."""
    ends = _declarations(text)
    lo, hi = 0, len(ends)  # prefix of ends[lo - 1] parses; of ends[hi - 1] does not
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            c_parser.CParser().parse(prelude + text[:ends[mid]])
            lo = mid + 1
        except Exception:  # noqa: BLE001 -- any refusal
            hi = mid
    start = ends[lo - 1] if lo else 0
    chunk = text[start:ends[lo]] if lo < len(ends) else text[start:]
    known = set(re.findall(r"typedef[^;]*?\b(\w+)\s*;", prelude + text[:start]))
    pos, name = start, ""
    for m in re.finditer(r"(?m)^[ \t]*(?:(?:const|volatile)\s+)*([A-Za-z_]\w*)\s+\**\s*"
                         r"[A-Za-z_]\w*", chunk):
        word = m.group(1)
        if word not in _C_WORDS and word not in known and word not in ("struct", "union"):
            pos, name = start + m.start(1), word
            break
    else:
        pos = start + len(chunk) - len(chunk.lstrip())
    return _text_place(text, pos), name


def _text_place(text: str, pos: int) -> str:
    """``file:line: `` of offset ``pos`` of preprocessed ``text`` (its line markers)."""
    file, line = "", 1
    for ln in text[:pos].split("\n")[:-1]:
        m = re.match(r'#\s*(\d+)\s+"([^"]*)"', ln)
        if m:
            file, line = m.group(2), int(m.group(1))
        else:
            line += 1
    return f"{file}:{line}: " if file else ""


def _canonical(words: list[str]) -> str:
    """``['long', 'unsigned', 'int']`` -> ``unsigned long``."""
    unsigned, signed = "unsigned" in words, "signed" in words
    ws = [w for w in words if w not in ("unsigned", "signed")]
    if ws.count("long") == 2:
        base = "long long"
    elif "long" in ws and "double" in ws:
        return "long double"
    elif "long" in ws:
        base = "long"
    elif "short" in ws:
        base = "short"
    elif "char" in ws:
        if signed and not unsigned:
            return "signed char"
        base = "char"
    elif ws in ([], ["int"]):
        base = "int"
    else:
        base = " ".join(ws)
    return f"unsigned {base}" if unsigned else base


def _strip_attributes(text: str) -> str:
    """Remove ``__attribute__((...))``; keep packed/aligned as marker members."""
    out: list[str] = []
    inserts: list[tuple[int, str]] = []  # positions in the output text
    pos = 0
    pat = re.compile(r"__attribute(?:__)?\s*\(\(")
    while True:
        m = pat.search(text, pos)
        if m is None:
            out.append(text[pos:])
            break
        out.append(text[pos:m.start()])
        depth, i = 2, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        body = text[m.end():i - 2]
        pos = i
        marker = _marker(body)
        if marker is None:
            continue
        done = "".join(out)
        prev = done.rstrip()
        if prev.endswith("}"):  # struct {...} __attribute__((packed))
            inserts.append((len(prev) - 1, marker[0]))
        elif re.search(r"\b(struct|union)\s*$", prev):  # struct __attribute__ ((packed)) x {
            brace = text.find("{", pos)
            if brace != -1 and ";" not in text[pos:brace]:
                out.append(text[pos:brace + 1] + marker[0])
                pos = brace + 1
        else:  # a member attribute: applies to the member this ';' ends
            semi = text.find(";", pos)
            if semi != -1 and marker[1]:
                out.append(text[pos:semi + 1] + marker[1])
                pos = semi + 1
    result = "".join(out)
    for at, ins in sorted(inserts, reverse=True):
        result = result[:at] + ins + result[at:]
    return result


def _marker(body: str) -> tuple[str, str] | None:
    """(struct-level marker, member-level marker) for an attribute list, or None."""
    if re.search(r"\b_*packed_*\b", body):
        return (f" char {_PACKED}[0]; ", "")
    m = re.search(r"\b_*aligned_*\b\s*(?:\(\s*(\d+)\s*\))?", body)
    if m:
        n = m.group(1) or "8"
        return (f" char {_ALIGN}{n}__[0]; ", f" char {_MALIGN}{n}__[0];")
    return None


def preprocess(path: str, include_dirs: list[str] | None = None) -> str:
    """The header after the C preprocessor (line markers kept)."""
    incs = [f"-I{d}" for d in include_dirs or []]
    incs.append(f"-I/usr/include/{platform.machine()}-linux-gnu")
    incs.append(f"-I{os.path.join(os.path.dirname(__file__), 'include')}")
    clang = shutil.which("clang")
    if clang:
        cmd = [clang, "-E", "-target", "bpf", "-x", "c", *_PREDEFS, *incs, path]
    elif shutil.which("cpp"):
        cmd = ["cpp", "-D__BPF__", *_PREDEFS, *incs, path]
    else:
        raise HeaderError("--header needs a C preprocessor (clang or cpp) on PATH", path)
    out, err, code = _run_bounded(cmd, path)
    if code < 0 or "out of memory" in err.lower() or "bad_alloc" in err:
        raise HeaderError("preprocessing expands without bound (more than"
                          f" {PREPROCESS_MEMORY >> 30} GB): self-referencing macros?", path)
    if code != 0:
        first = next((ln for ln in err.splitlines() if "error" in ln), err.strip())
        raise HeaderError(f"preprocessor failed: {first}", path)
    return out


def _limit_memory() -> None:  # pragma: no cover - runs in the child
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (PREPROCESS_MEMORY, PREPROCESS_MEMORY))


def _run_bounded(cmd: list[str], path: str) -> tuple[str, str, int]:
    """Run the preprocessor with bounded time, memory and output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    preexec_fn=_limit_memory)
        except OSError as e:
            raise HeaderError(f"cannot preprocess: {e.strerror or e}", path) from None
        deadline = time.monotonic() + PREPROCESS_SECONDS
        while proc.poll() is None:
            if time.monotonic() > deadline or os.fstat(out.fileno()).st_size > MAX_PREPROCESSED:
                proc.kill()
                proc.wait()
                raise HeaderError(f"preprocessing expands without bound (more than"
                                  f" {MAX_PREPROCESSED >> 20} MB or {PREPROCESS_SECONDS} s):"
                                  " self-referencing macros?", path)
            time.sleep(0.005)
        if os.fstat(out.fileno()).st_size > MAX_PREPROCESSED:
            raise HeaderError(f"preprocessed header larger than {MAX_PREPROCESSED >> 20} MB",
                              path)
        out.seek(0)
        err.seek(0)
        return (out.read().decode("utf-8", "surrogateescape"),
                err.read().decode("utf-8", "replace"), proc.returncode)


class HeaderTypes:
    """The types a C header declares, converted on demand into ``ext``."""

    def __init__(self, path: str, ext: BtfExtender,
                 include_dirs: list[str] | None = None) -> None:
        self.path = path
        self.ext = ext
        text = _strip_attributes(preprocess(path, include_dirs))
        #: typedef names the header uses but does not define, taken from the
        #: object's BTF: name -> (type id, the placeholder pycparser saw)
        self._from_btf: dict[str, tuple[int, Any]] = {}
        prelude, from_btf = self._prelude(text)
        try:
            ast = c_parser.CParser().parse(prelude + text, path)
        except Exception as e:  # pycparser raises ParseError and others on odd input
            raise HeaderError(_parse_error(e, prelude, text, path), path) from None
        self.tags: dict[tuple[str, str], Any] = {}
        self.typedefs: dict[str, Any] = {}
        self.enumerators: dict[str, int] = {}
        #: C spellings of the records the header file itself defines, in order.
        self.own: list[str] = []
        self._done: dict[int, int] = {}
        self._layout: dict[int, tuple[int, int]] = {}
        real = os.path.realpath(path)
        for node in ast.ext:
            if isinstance(node, c_ast.Typedef) and node.name in from_btf and \
                    node.coord is not None and node.coord.file == _PRELUDE:
                self._from_btf[node.name] = (from_btf[node.name], node.type)
        try:
            for node in ast.ext:
                own = node.coord is not None and os.path.realpath(str(node.coord.file)) == real
                self._collect(node, own)
        except HeaderError as e:
            e.path = path
            raise

    def _prelude(self, text: str) -> tuple[str, dict[str, int]]:
        """Typedefs declared before the header: :data:`PREDEFINED`, and placeholders
        for the object's own typedef names the header uses (their BTF types are
        taken when converting).  The header's own definitions come later and win."""
        words = set(_IDENT.findall(text))
        lines = [f'# 1 "{_PRELUDE}"']
        for name, target in PREDEFINED.items():
            lines.append(f"typedef {target} {name};")
        from_btf: dict[str, int] = {}
        base = self.ext.base
        for name in sorted(words - set(PREDEFINED) - _C_WORDS):
            found = base.find(name, Kind.TYPEDEF)
            if found and not re.search(rf"\b{re.escape(name)}\s*(=|,|\}})", text):
                from_btf[name] = found[0].id
                lines.append(f"typedef int {name};")
        return "\n".join(lines) + "\n", from_btf

    # -- declarations --------------------------------------------------------------

    def _collect(self, node: Any, own: bool) -> None:
        if isinstance(node, c_ast.Typedef):
            self.typedefs[node.name] = node.type
            if own and self._record_of(node.type) is not None:
                self.own.append(node.name)
        if isinstance(node, (c_ast.Decl, c_ast.Typedef)):
            self._collect_tags(node.type, own)

    def _record_of(self, t: Any) -> Any:
        while isinstance(t, c_ast.TypeDecl):
            t = t.type
        return t if isinstance(t, (c_ast.Struct, c_ast.Union)) else None

    def _collect_tags(self, t: Any, own: bool, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            return
        while isinstance(t, (c_ast.TypeDecl, c_ast.PtrDecl, c_ast.ArrayDecl)):
            t = t.type
        if isinstance(t, (c_ast.Struct, c_ast.Union)) and t.decls is not None:
            word = "struct" if isinstance(t, c_ast.Struct) else "union"
            if t.name:
                self.tags[(word, t.name)] = t
                if own:
                    self.own.append(f"{word} {t.name}")
            for d in t.decls:
                self._collect_tags(d.type, False, depth + 1)
        elif isinstance(t, c_ast.Enum) and t.values is not None:
            if t.name:
                self.tags[("enum", t.name)] = t
            value = -1
            for e in t.values.enumerators:
                value = self._const(e.value) if e.value is not None else value + 1
                self.enumerators[e.name] = value

    # -- lookup ---------------------------------------------------------------------

    def lookup(self, spec: str) -> int:
        """The type id of ``struct x``/``union x``/``enum x``/a typedef name; 0 if absent."""
        words = spec.split()
        try:
            if len(words) == 2 and (words[0], words[1]) in self.tags:
                return self._convert(self.tags[(words[0], words[1])], 0)
            if len(words) == 1 and words[0] in self.typedefs:
                return self._typedef(words[0], 0)
        except HeaderError as e:
            e.path = self.path
            raise
        except RecursionError:
            raise HeaderError(f"{spec}: types nested too deeply", self.path) from None
        return 0

    def size_of(self, type_id: int) -> int:
        """sizeof() of a type this header converted (or of the base's)."""
        return self._size_align(type_id)[0]

    # -- conversion -----------------------------------------------------------------

    def _size_align(self, tid: int) -> tuple[int, int]:
        if tid in self._layout:
            return self._layout[tid]
        if tid < self.ext.start_id:
            return self.ext.base.size_of(tid), self.ext.base.align_of(tid)
        raise HeaderError(f"type id {tid} has no known size")

    def _set(self, tid: int, size: int, align: int) -> int:
        self._layout[tid] = (size, align)
        return tid

    def _base(self, words: list[str]) -> int:
        name = _canonical(words)
        if name not in _BASE:
            raise HeaderError(f"unknown type '{' '.join(words)}'")
        size, signed, is_char, is_bool, is_float = _BASE[name]
        if is_float:
            for t in self.ext.base.find(name, Kind.FLOAT):
                return self._set(t.id, size, size)
            return self._set(self.ext.add(Float(0, name, 0, size)), size, size)
        tid = self.ext.int_type(name, size, signed, is_bool=is_bool, is_char=is_char)
        return self._set(tid, size, size)

    def _typedef(self, name: str, depth: int) -> int:
        key = id(self.typedefs[name])
        if key in self._done:
            return self._done[key]
        target = self._type(self.typedefs[name], depth + 1)
        size, align = self._size_align(target) if target else (0, 1)
        for t in self.ext.base.find(name, Kind.TYPEDEF):
            try:
                if self.ext.base.size_of(t.id) == size:
                    self._done[key] = t.id
                    return self._set(t.id, size, align)
            except BtfgenError:
                continue
        tid = self.ext.add(Typedef(0, name, 0, target))
        self._done[key] = tid
        return self._set(tid, size, align)

    def _type(self, t: Any, depth: int) -> int:
        if depth > _MAX_DEPTH:
            raise HeaderError("types nested too deeply")
        if isinstance(t, c_ast.TypeDecl):
            inner = self._type(t.type, depth + 1)
            for q, cls in (("volatile", Volatile), ("const", Const)):
                if q in t.quals and inner:
                    size, align = self._size_align(inner)
                    inner = self._set(self.ext.add(cls(0, "", 0, inner)), size, align)
            return inner
        if isinstance(t, c_ast.IdentifierType):
            name = t.names[0] if len(t.names) == 1 else ""
            btf_name = self._from_btf.get(name)
            if btf_name is not None and self.typedefs.get(name) is btf_name[1]:
                tid = btf_name[0]
                return self._set(tid, self.ext.base.size_of(tid), self.ext.base.align_of(tid))
            if name in self.typedefs:
                return self._typedef(name, depth)
            if t.names == ["void"]:
                return 0
            return self._base(t.names)
        if isinstance(t, c_ast.PtrDecl):
            p = self.ext.add(Ptr(0, "", 0, self._pointee(t.type, depth)))
            return self._set(p, 8, 8)
        if isinstance(t, c_ast.ArrayDecl):
            elem = self._type(t.type, depth + 1)
            n = self._const(t.dim) if t.dim is not None else 0
            esize, ealign = self._size_align(elem)
            if n < 0 or esize * n > 0xFFFFFFFF:
                raise HeaderError(f"{_where(t)}array size {n} is "
                                  f"{'negative' if n < 0 else 'too large'}")
            index = self.ext.int_type("__ARRAY_SIZE_TYPE__", 4, False)
            return self._set(self.ext.add(Array(0, "", 0, elem, index, n)), esize * n, ealign)
        if isinstance(t, (c_ast.Struct, c_ast.Union, c_ast.Enum)):
            return self._convert(t, depth)
        if isinstance(t, c_ast.FuncDecl):
            return 0
        raise HeaderError(f"unsupported declaration {type(t).__name__}")

    def _pointee(self, t: Any, depth: int) -> int:
        inner = t.type if isinstance(t, c_ast.TypeDecl) else t
        if isinstance(inner, (c_ast.Struct, c_ast.Union)):
            if not inner.name:
                return 0
            kind = Kind.STRUCT if isinstance(inner, c_ast.Struct) else Kind.UNION
            for b in self.ext.base.find(inner.name, kind):
                return b.id
            return self.ext.add(Fwd(0, inner.name, 0, kind_flag=kind == Kind.UNION))
        if isinstance(inner, c_ast.FuncDecl) or isinstance(t, c_ast.FuncDecl):
            return 0
        return self._type(t, depth + 1)

    def _convert(self, t: Any, depth: int) -> int:
        word = "enum" if isinstance(t, c_ast.Enum) else \
            "struct" if isinstance(t, c_ast.Struct) else "union"
        body = t
        if getattr(t, "decls" if word != "enum" else "values", None) is None and t.name:
            body = self.tags.get((word, t.name))
            if body is None:
                kinds = {"struct": (Kind.STRUCT,), "union": (Kind.UNION,),
                         "enum": (Kind.ENUM, Kind.ENUM64)}[word]
                for kind in kinds:  # a kernel type the header uses: the object's BTF has it
                    for b in self.ext.base.find(t.name, kind):
                        return self._set(b.id, self.ext.base.size_of(b.id),
                                         self.ext.base.align_of(b.id))
                kind_flag = word == "union"
                return self.ext.add(Fwd(0, t.name, 0, kind_flag=kind_flag))
        if id(body) in self._done:
            return self._done[id(body)]
        if word == "enum":
            return self._enum(body)
        return self._record(body, word == "union", depth)

    def _enum(self, t: Any) -> int:
        values = [EnumValue(e.name, self.ext.name_off(e.name), self.enumerators[e.name])
                  for e in t.values.enumerators]
        signed = any(v.value < 0 for v in values)
        big = any(v.value > 0xFFFFFFFF or v.value < -(1 << 31) for v in values)
        size = 8 if big else 4
        cls = Enum64 if big else Enum
        tid = self.ext.add(cls(0, t.name or "", 0, size, values, kind_flag=signed))
        self._done[id(t)] = tid
        return self._set(tid, size, size)

    def _record(self, t: Any, is_union: bool, depth: int) -> int:
        rec: Struct | Union = (Union if is_union else Struct)(0, t.name or "", 0, 0, [])
        tid = self.ext.add(rec)
        self._done[id(t)] = tid
        decls = list(t.decls)
        sim = RecordSim(is_union, packed=any(d.name == _PACKED for d in decls))
        align = 1  # aligned(N) on the record
        for i, d in enumerate(decls):
            name = d.name or ""
            if name == _PACKED:
                continue
            if name.startswith(_ALIGN):
                align = max(align, int(name[len(_ALIGN):-2]))
                continue
            if name.startswith(_MALIGN):
                continue
            mtid = self._type(d.type, depth + 1)
            msize, malign = self._size_align(mtid) if mtid else (0, 1)
            nxt = decls[i + 1].name if i + 1 < len(decls) else None
            attr = int(nxt[len(_MALIGN):-2]) if nxt and nxt.startswith(_MALIGN) else 0
            width = self._const(d.bitsize) if d.bitsize is not None else None
            off = sim.add(CField(msize, max(malign, 1), width, bool(name), attr))
            if width is not None and name:
                rec.kind_flag = True
            if (name or width is None) and width != 0:
                rec.members.append(Member(name, self.ext.name_off(name) if name else 0, mtid,
                                          off, width or 0))
        align = max(align, sim.align)
        size = natural_offset(sim.data_bits // 8, align)
        rec.size = size
        if not rec.kind_flag:
            for m in rec.members:
                m.bitfield_size = 0
        return self._set(tid, size, align)

    # -- constant expressions ------------------------------------------------------------

    def _const(self, e: Any) -> int:
        if isinstance(e, c_ast.Constant):
            v = e.value.rstrip("uUlL")
            if e.type == "char":
                return ord(v.strip("'")[-1:] or "\0")
            return int(v, 0) if not re.fullmatch(r"0[0-7]+", v) else int(v, 8)
        if isinstance(e, c_ast.ID):
            if e.name in self.enumerators:
                return self.enumerators[e.name]
            raise HeaderError(f"'{e.name}' is not a constant")
        if isinstance(e, c_ast.UnaryOp):
            if e.op == "sizeof":
                return self._size_align(self._type(e.expr, 0))[0] if not isinstance(
                    e.expr, c_ast.Typename) else self._size_align(self._type(e.expr.type, 0))[0]
            v = self._const(e.expr)
            return {"-": -v, "+": v, "~": ~v, "!": int(not v)}.get(e.op, v)
        if isinstance(e, c_ast.BinaryOp):
            a, b = self._const(e.left), self._const(e.right)
            ops = {"+": a + b, "-": a - b, "*": a * b, "<<": a << b if b < 64 else 0,
                   ">>": a >> b if b < 64 else 0, "|": a | b, "&": a & b, "^": a ^ b}
            if e.op in ops:
                return ops[e.op]
            if e.op in ("/", "%") and b:
                return a // b if e.op == "/" else a % b
        if isinstance(e, c_ast.Cast):
            return self._const(e.expr)
        if isinstance(e, c_ast.TernaryOp):
            return self._const(e.iftrue) if self._const(e.cond) else self._const(e.iffalse)
        raise HeaderError("unsupported constant expression in an array size or enum")
