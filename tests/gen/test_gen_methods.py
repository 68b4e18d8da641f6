"""Generated records write ``__init__``/``__repr__``/``__eq__`` in their source
(``@dataclass(init=False, repr=False, eq=False)``): each class must behave
exactly as a plain ``@dataclass(slots=True)`` of the same fields would."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers.build import compile_bpf
from tests.helpers.gen import generate
from tests.helpers.lint import mypy_strict, ruff

SRC = r"""
#include <linux/types.h>
#define SEC(n) __attribute__((section(n), used))

enum mode { M_OFF, M_ON = 3 };
struct pt { int x, y; };
/* Members named like __init__'s and __eq__'s own names and the module's. */
struct names { int self; int other; int _Factory; int Enum; struct pt cls; __u8 buf[2]; };
struct ev {
    __u32 pid;
    int sb : 3;
    unsigned ub : 5;
    enum mode m;
    union { __u32 lo; __u8 bytes[4]; };
    struct pt pts[2];
    struct pt one;
    __s16 grid[2][3];
    char comm[8];
    float f;
    double d;
    _Bool ok;
    void *ptr;
};
union val { __u64 u; __s32 i; char s[8]; struct pt p; };
struct msg { __u32 len; char text[]; };
struct nums { __u16 n; __u32 vals[]; };
struct pts { __u16 n; struct pt items[]; };
struct empty {};
struct a_rather_long_struct_name_that_wraps_its_eq {
    __u64 a_rather_long_member_name_number_one[2];
    struct pt a_rather_long_member_name_number_two;
    __u64 a_rather_long_member_name_number_three;
};

struct names names_g;
struct ev ev_g;
union val val_g;
struct msg msg_g;
struct nums nums_g;
struct pts pts_g;
struct empty empty_g;
struct a_rather_long_struct_name_that_wraps_its_eq long_g;
char LICENSE[] SEC("license") = "GPL";
"""

CORPUS = ("ksnoop", "biostacks", "biotop", "tcpconnect", "execsnoop")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModuleType]:
    d = tmp_path_factory.mktemp("methods")
    obj = compile_bpf(SRC, d / "methods.bpf.o", clang="clang-19")
    out = d / "methods_skel.py"
    return out, generate(obj, out)


@pytest.fixture(scope="module")
def modules(compiled: tuple[Path, ModuleType], corpus_objects: list[Path],
            tmp_path_factory: pytest.TempPathFactory) -> list[ModuleType]:
    d = tmp_path_factory.mktemp("methods_corpus")
    picked = [o for o in corpus_objects if o.name.removesuffix(".bpf.o") in CORPUS]
    assert len(picked) == len(CORPUS)
    return [compiled[1], *(generate(o, d / f"{o.stem}_skel.py") for o in picked)]


def records(mod: ModuleType) -> list[type]:
    classes = {id(c): c for c in mod.TYPES.values() if dataclasses.is_dataclass(c)}
    return list(classes.values())


def reference(cls: type) -> type:
    """A plain ``@dataclass(slots=True)`` with the same fields as ``cls``."""
    spec = [(f.name, f.type, dataclasses.field(default=f.default, default_factory=f.default_factory,
                                               init=f.init, repr=f.repr, compare=f.compare))
            for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    return dataclasses.make_dataclass(cls.__name__, spec, slots=True)


def samples(cls: Any) -> list[list[Any]]:
    """Field values of records decoded from random bytes (flexible arrays get 16 bytes)."""
    rnd = random.Random(cls.SIZE)
    names = [f.name for f in dataclasses.fields(cls)]
    out = []
    for fill in (0, 1, 2, 2):
        data = bytes(fill and rnd.randrange(256) for _ in range(cls.SIZE + 16))
        rec = cls.from_bytes(data)
        out.append([getattr(rec, n) for n in names])
    return out


def check_class(cls: Any) -> None:
    ref: Any = reference(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    assert cls.__dataclass_params__.init is False
    # Written in the module's source, not compiled by dataclasses at import
    # (a record without fields keeps object.__init__, as dataclass's takes no arguments).
    for method in ("__init__", "__repr__", "__eq__")[0 if names else 1:]:
        code = cls.__dict__[method].__code__
        assert code.co_filename == cls.from_bytes.__code__.co_filename, (cls, method)
    assert cls.__slots__ == ref.__slots__
    assert cls.__match_args__ == ref.__match_args__ == tuple(names)
    assert cls.__hash__ is None
    with pytest.raises(TypeError, match="unhashable"):
        hash(cls())

    # Defaults, and factories giving each record its own value.
    assert repr(cls()) == repr(ref())
    assert [getattr(cls(), n) for n in names] == [getattr(ref(), n) for n in names]
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(cls(), f.name) is not getattr(cls(), f.name)

    rows = samples(cls)
    for vals in rows:
        pos, kw = cls(*vals), cls(**dict(zip(names, vals, strict=True)))
        for rec in (pos, kw):
            assert all(getattr(rec, n) is v for n, v in zip(names, vals, strict=True))
        assert repr(pos) == repr(ref(*vals))
        assert "_raw" not in repr(pos)
        # Other classes: NotImplemented, so == falls back to identity.
        assert pos.__eq__(ref(*vals)) is NotImplemented
        assert pos.__eq__(object()) is NotImplemented
        assert pos != ref(*vals) and not pos == ref(*vals)  # noqa: SIM201
        assert dataclasses.asdict(pos) == dataclasses.asdict(ref(*vals))
        assert dataclasses.astuple(pos) == dataclasses.astuple(ref(*vals))
        copy = dataclasses.replace(pos)
        assert copy == pos and copy is not pos and repr(copy) == repr(pos)
        if names:
            last = dataclasses.replace(pos, **{names[0]: vals[0]})
            assert getattr(last, names[0]) is vals[0]
    for a in rows:
        for b in rows:
            assert (cls(*a) == cls(*b)) == (ref(*a) == ref(*b))
            assert (cls(*a) != cls(*b)) == (ref(*a) != ref(*b))

    # A subclass is another class, as for dataclasses.
    sub: Any = type("Sub", (cls,), {"__slots__": ()})
    ref_sub: Any = type("Sub", (ref,), {"__slots__": ()})
    assert repr(sub(*rows[1])) == repr(ref_sub(*rows[1]))
    assert (cls(*rows[1]) == sub(*rows[1])) is (ref(*rows[1]) == ref_sub(*rows[1])) is False

    if len(names) > 1:
        with pytest.raises(TypeError):
            cls(*rows[0], *rows[0])
    with pytest.raises(TypeError):
        cls(no_such_field=1)


def test_records_behave_like_plain_dataclasses(modules: list[ModuleType]) -> None:
    checked = 0
    for mod in modules:
        for cls in records(mod):
            check_class(cls)
            checked += 1
    assert checked >= 20, checked


@pytest.mark.slow
def test_compiled_records(compiled: tuple[Path, ModuleType]) -> None:
    path, mod = compiled
    ev = mod.TYPES["struct ev"]
    names = mod.TYPES["struct names"]
    assert [f.name for f in dataclasses.fields(names)] == [
        "self", "other", "_Factory_", "Enum_", "cls", "buf"]
    rec = names(1, 2, 3, 4)
    assert (rec.self, rec.other, rec._Factory_, rec.Enum_) == (1, 2, 3, 4)
    assert rec.cls == mod.TYPES["struct pt"](0, 0) and rec.buf == [0, 0]
    assert repr(rec) == "Names(self=1, other=2, _Factory_=3, Enum_=4, cls=Pt(x=0, y=0), buf=[0, 0])"

    e = ev(pid=7, sb=-2, comm=b"x", d=float("nan"))
    assert e.pts == [mod.TYPES["struct pt"](), mod.TYPES["struct pt"]()]
    assert e.pts[0] is not e.pts[1]
    assert e != ev(pid=7, sb=-2, comm=b"x", d=float("nan"))  # NaN != NaN ...
    assert e == dataclasses.replace(e)  # ... but a tuple holding the same NaN is equal
    match e:
        case ev(7, -2, 0, m, lo, bytes_):
            assert (m, lo, bytes_) == (0, 0, [0] * 4)
        case _:
            pytest.fail("positional pattern did not match")

    # Unions keep their bytes (hidden from repr and ==) through init and replace.
    val = mod.TYPES["union val"]
    u = val.from_bytes(bytes(range(8)))
    assert u == val(u.u, u.i, u.s, u.p) and u._raw == bytes(range(8))
    assert dataclasses.replace(u, i=-1)._raw == u._raw
    assert dataclasses.replace(u).to_bytes() == bytes(range(8))
    assert ruff([path]).returncode == 0, ruff([path]).stdout
    assert mypy_strict([path]).returncode == 0, mypy_strict([path]).stdout
