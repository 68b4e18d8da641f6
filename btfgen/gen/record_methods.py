"""The ``__init__``, ``__repr__`` and ``__eq__`` of a generated record class.

Generated records stay dataclasses (``fields``, ``replace``, ``asdict``,
``__match_args__``, slots) but are decorated ``init=False, repr=False,
eq=False``: otherwise ``@dataclass`` compiles these three methods with
``exec`` for every class at import, most of what importing a module costs
(measured: executing the ``--type "struct sock"`` module of vmlinux, 29 records,
takes 22 ms of CPU written out and 37 ms as plain ``@dataclass(slots=True)``).
They are written into the module instead, with the semantics ``@dataclass``
gives them: the same parameters and defaults (a default factory runs per
call), ``Name(a=1, b=b'x')`` reprs, and equality of field tuples between
instances of exactly the same class.  A class that defines ``__eq__`` gets
``__hash__ = None`` from Python, so records stay unhashable.

A parameter whose field has a default factory defaults to the module's
``_Factory.DEFAULT`` sentinel (a one-member enum, so type checkers narrow
``x is _Factory.DEFAULT``).  Parameters are named after the fields, so no
field may shadow what ``__init__`` refers to: class names, builtins and
``_Factory`` are reserved by :mod:`btfgen.gen.naming`; the one clash left, a field
called ``self``, renames ``__init__``'s own first parameter, as ``@dataclass``
does.
"""

from __future__ import annotations

from dataclasses import dataclass

from btfgen.gen.model import LINE_WIDTH, RecordClass

#: The default of a parameter whose field has a default factory.
_DEFAULT = "_Factory.DEFAULT"


@dataclass(frozen=True)
class _Field:
    attr: str
    hint: str
    #: The default value's expression (a factory's result when ``fresh``).
    value: str
    fresh: bool
    #: Shown by ``__repr__`` and compared by ``__eq__`` (the hidden ``_raw`` is not).
    shown: bool = True


def _fields(rec: RecordClass) -> list[_Field]:
    out = [_Field(f.attr, f.hint, f.value, f.fresh) for f in rec.fields]
    if rec.keeps_raw:
        out.append(_Field("_raw", "bytes", 'b""', fresh=False, shown=False))
    return out


def uses_factory(rec: RecordClass) -> bool:
    """Whether the record's ``__init__`` refers to ``_Factory``."""
    return any(f.fresh for f in rec.fields)


def record_methods(rec: RecordClass) -> list[list[str]]:
    """The source lines of each method, indented for the class body."""
    fields = _fields(rec)
    methods = [_repr(fields), _eq(rec.name, fields)]
    if fields:  # without fields, object.__init__ takes no arguments either
        methods.insert(0, _init(fields))
    return methods


def _init(fields: list[_Field]) -> list[str]:
    me = "__self__" if any(f.attr == "self" for f in fields) else "self"
    params = [me]
    body: list[str] = []
    for f in fields:
        if not f.fresh:
            params.append(f"{f.attr}: {f.hint} = {f.value}")
            body.append(f"        {me}.{f.attr} = {f.attr}")
            continue
        params.append(f"{f.attr}: {f.hint} | _Factory = {_DEFAULT}")
        parts = [f.value, f"if {f.attr} is {_DEFAULT}", f"else {f.attr}"]
        value = " ".join(parts)
        if len(f"        {me}.{f.attr} = {value}") <= LINE_WIDTH:
            body.append(f"        {me}.{f.attr} = {value}")
        elif len(f"            {value}") <= LINE_WIDTH:
            body += [f"        {me}.{f.attr} = (", f"            {value}", "        )"]
        else:
            body += [f"        {me}.{f.attr} = (", *[f"            {p}" for p in parts],
                     "        )"]
    one = f"    def __init__({', '.join(params)}) -> None:"
    if len(one) <= LINE_WIDTH:
        return [one, *body]
    return ["    def __init__(", *[f"        {p}," for p in params], "    ) -> None:", *body]


def _repr(fields: list[_Field]) -> list[str]:
    shown = [f.attr for f in fields if f.shown]
    head = ["    def __repr__(self) -> str:"]
    text = "{type(self).__qualname__}(" + ", ".join(f"{a}={{self.{a}!r}}" for a in shown) + ")"
    one = f'        return f"{text}"'
    if len(one) <= LINE_WIDTH:
        return [*head, one]
    # Implicitly concatenated strings, broken between fields (or, for a
    # field too long for a line, after its ``name=``).
    room = LINE_WIDTH - len('            f""')
    pieces: list[str] = []
    for k, a in enumerate(shown):
        label, value = f"{a}=", f"{{self.{a}!r}}" + (", " if k < len(shown) - 1 else ")")
        pieces += [label + value] if len(label + value) <= room else [label, value]
    chunks = ["{type(self).__qualname__}("]
    for piece in pieces:
        if len(chunks[-1]) + len(piece) <= room:
            chunks[-1] += piece
        else:
            chunks.append(piece)
    # Only chunks with a placeholder are f-strings (field names hold no braces).
    literals = [f'{"f" if "{" in c else ""}"{c}"' for c in chunks]
    return [*head, "        return (", *[f"            {c}" for c in literals], "        )"]


def _eq(cls: str, fields: list[_Field]) -> list[str]:
    names = [f.attr for f in fields if f.shown]
    lines = ["    def __eq__(self, other: object) -> bool:"]
    cond = f"isinstance(other, {cls}) and other.__class__ is self.__class__"
    if len(f"        if {cond}:") <= LINE_WIDTH:
        lines.append(f"        if {cond}:")
    else:
        lines += ["        if (", f"            isinstance(other, {cls})",
                  "            and other.__class__ is self.__class__", "        ):"]
    if not names:
        lines.append("            return True")
    else:
        mine, theirs = _tuple("self", names), _tuple("other", names)
        one = f"            return {mine} == {theirs}"
        if len(one) <= LINE_WIDTH:
            lines.append(one)
        else:
            lines += ["            return (", *[f"                self.{n}," for n in names],
                      "            ) == (", *[f"                other.{n}," for n in names],
                      "            )"]
    return [*lines, "        return NotImplemented"]


def _tuple(owner: str, names: list[str]) -> str:
    items = ", ".join(f"{owner}.{n}" for n in names)
    return f"({items},)" if len(names) == 1 else f"({items})"
