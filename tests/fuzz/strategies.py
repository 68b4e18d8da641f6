"""Hypothesis strategies that build BTF with :class:`btf_builder.BtfBuilder`.

:func:`btf_blobs` draws a whole BTF blob: a few base types, then a random
graph of types of every kind whose references are *mostly* to earlier types
(so deep, valid structures reach the generator) and sometimes anywhere --
themselves, later types, out of range -- with sizes, offsets, bitfields, vlen
and names that may lie.  The byte order and, rarely, a header field that lies
are drawn too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.helpers.btf_builder import INT_BOOL, INT_CHAR, INT_SIGNED, BtfBuilder

#: Names that have broken or could break code generators.
HOSTILE_NAMES: tuple[bytes, ...] = (
    b"class", b"def", b"None", b"True", b"match", b"_", b"__", b"___", b"__class__",
    b"__init__", b"__slots__", b"__dict__", b"__module__", b"__annotations__", b"__all__",
    b"ffi", b"TYPES", b"SIZE", b"from_bytes", b"to_bytes", b"struct", b"field", b"dataclass",
    b"ClassVar", b"IntEnum", b"Buffer", b"annotations", b"int", b"bytes", b"list", b"type",
    b"self", b"cls", b"v", b"buf", b"offset", b"_codec", b"_rt", b"name", b"value", b"mro",
    b"a b", b"a.b", b"func.var", b"1abc", b"9", b"'", b'"', b'"""', b"'''", b"\\", b"\\N{",
    b"x\ny", b"\r", b"\t", b"#", b"{", b"}", b"{{ x }}", b"{% if %}", b"\xff", b"\xc3(",
    b"\xed\xa0\x80", b"\xe2\x80\xae", b"caf\xc3\xa9", b"\xef\xbb\xbf", b"a" * 300,
    b"__import__('os').system('touch /tmp/pwn')", b"x\"); import os; os._exit(3); (\"",
    b"*/ #", b"/*", b"//", b"l", b"O", b"I", b"Event", b"event", b"Event_2",
)


def names() -> st.SearchStrategy[bytes]:
    """Plain identifiers, hostile names and arbitrary NUL-free bytes."""
    return st.one_of(
        st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True).map(str.encode),
        st.sampled_from(HOSTILE_NAMES),
        st.binary(max_size=10).map(lambda b: b.replace(b"\0", b"")),
    )


_BASE = (("int", 4, INT_SIGNED), ("unsigned int", 4, 0), ("char", 1, INT_SIGNED),
         ("_Bool", 1, INT_BOOL), ("long long", 8, INT_SIGNED), ("unsigned short", 2, 0),
         ("unsigned __int128", 16, 0))

KINDS = ("struct", "struct", "struct", "union", "enum", "enum64", "typedef", "typedef",
         "array", "ptr", "const", "volatile", "restrict", "type_tag", "fwd", "int", "float",
         "func_proto", "func", "var", "datasec", "decl_tag", "garbage")


@st.composite
def btf_blobs(draw: Any, max_types: int = 14) -> bytes:
    """One BTF blob (see the module docstring)."""
    b = BtfBuilder()
    sizes: dict[int, int] = {}
    for name, size, enc in _BASE:
        sizes[b.int_(name, size, encoding=enc)] = size
    sizes[b.float_("double", 8)] = 8
    n = draw(st.integers(1, max_types))
    last = b.next_id + n - 1  # id of the last type we will add
    # Half the graphs are careful (references only to earlier types, no garbage
    # records, sane ints) so that they reach the generator's deeper stages.
    sloppy = draw(st.booleans())

    def ref() -> int:
        cur = b.next_id
        if (not sloppy or draw(st.integers(0, 9)) < 8) and cur > 1:
            return draw(st.integers(1, cur - 1))
        return draw(st.sampled_from((0, cur, cur + 1, last, last + 1, 0xFFFFFFFF, 0x00FFFFFF)))

    def size_of(tid: int) -> int:
        return sizes.get(tid, draw(st.sampled_from((0, 1, 4, 8))))

    for _ in range(n):
        kind = draw(st.sampled_from(KINDS if sloppy else KINDS[:-1]))
        name = draw(names())
        if kind in ("struct", "union"):
            members = []
            off = 0
            kflag = draw(st.booleans())
            for _m in range(draw(st.integers(0, 6))):
                mt = ref()
                msize = size_of(mt)
                bits = draw(st.sampled_from((0, 0, 0, 1, 3, 7, 31, 64, 65))) if kflag else 0
                if kind == "union":
                    boff = 0
                elif draw(st.integers(0, 9)) == 0:
                    boff = draw(st.integers(0, 1 << 20))
                else:
                    align = min(max(msize, 1), 8)
                    off = (off + align - 1) // align * align
                    boff = off * 8
                    off += msize
                members.append((draw(names()), mt, boff, bits))
            total = max([off] + [m[2] // 8 + 1 for m in members]) if members else 0
            size = draw(st.sampled_from((total, total, (total + 7) // 8 * 8, 0, total + 3,
                                         0xFFFFFFFF)))
            tid = (b.struct if kind == "struct" else b.union)(name, size, members, kflag=kflag)
            sizes[tid] = size
        elif kind in ("enum", "enum64"):
            size = draw(st.sampled_from((4, 8, 1, 2, 3) if kind == "enum" else (8, 4, 16)))
            vals = draw(st.lists(st.tuples(names(), st.integers(-(1 << 63), (1 << 64) - 1)),
                                 max_size=5))
            fn = b.enum if kind == "enum" else b.enum64
            tid = fn(name, size, vals, signed=draw(st.booleans()))
            sizes[tid] = size
        elif kind == "typedef":
            target = ref()
            tid = b.typedef(name, target)
            if target in sizes:
                sizes[tid] = sizes[target]
        elif kind == "array":
            elem = ref()
            nelems = draw(st.sampled_from((0, 1, 3, 16, 0xFFFFFFFF, 1 << 28)))
            tid = b.array(elem, draw(st.sampled_from((1, 2, ref()))), nelems)
            if elem in sizes:
                sizes[tid] = sizes[elem] * nelems
        elif kind == "ptr":
            sizes[b.ptr(ref())] = 8
        elif kind in ("const", "volatile", "restrict"):
            target = ref()
            tid = getattr(b, kind)(target)
            if target in sizes:
                sizes[tid] = sizes[target]
        elif kind == "type_tag":
            b.type_tag(name, ref())
        elif kind == "fwd":
            b.fwd(name, union=draw(st.booleans()))
        elif kind == "int":
            size = draw(st.sampled_from((1, 2, 4, 8, 16, 3, 0) if sloppy else (1, 2, 4, 8)))
            enc = draw(st.sampled_from((0, INT_SIGNED, INT_CHAR, INT_BOOL, 8) if sloppy
                                       else (0, INT_SIGNED)))
            nr_bits = draw(st.sampled_from((size * 8, 1, 0, 200) if sloppy else (size * 8,)))
            sizes[b.int_(name, size, encoding=enc, nr_bits=nr_bits,
                         bits_offset=draw(st.sampled_from((0, 0, 3))))] = size
        elif kind == "float":
            size = draw(st.sampled_from((2, 4, 8, 16, 12, 3)))
            sizes[b.float_(name, size)] = size
        elif kind == "func_proto":
            b.func_proto(ref(), [(draw(names()), ref()) for _ in range(draw(st.integers(0, 3)))])
        elif kind == "func":
            b.func(name, ref(), draw(st.sampled_from((0, 1, 2, 7))))
        elif kind == "var":
            b.var(name, ref(), draw(st.sampled_from((0, 1, 2, 9))))
        elif kind == "datasec":
            entries = [(ref(), draw(st.integers(0, 64)), draw(st.sampled_from((1, 4, 8, 0))))
                       for _ in range(draw(st.integers(0, 3)))]
            b.datasec(draw(st.sampled_from((b".data", b".rodata", b".bss", name))), 64, entries)
        elif kind == "decl_tag":
            b.decl_tag(name, ref(), draw(st.sampled_from((-1, 0, 1, 5, -2))))
        else:  # a record of any kind, vlen and words
            b.raw_type(name, draw(st.integers(0, 31)), draw(st.sampled_from((0, 1, 2, 0xFFFF))),
                       draw(st.booleans()), draw(st.integers(0, 0xFFFFFFFF)),
                       draw(st.lists(st.integers(0, 0xFFFFFFFF), max_size=6)))
    order = draw(st.sampled_from(("little", "little", "big")))
    lie = draw(st.integers(0, 19)) if sloppy else 99
    if lie == 0:
        return b.build(order, type_len=draw(st.sampled_from((0, 4, 12, 0xFFFFFFF0))))
    if lie == 1:
        return b.build(order, str_len=draw(st.sampled_from((0, 1, 0xFFFFFFFF))))
    if lie == 2:
        return b.build(order, hdr_len=draw(st.sampled_from((0, 23, 32, 0xFFFFFFFF))),
                       header_tail=b"")
    return b.build(order)
