"""The record model: which Python classes a module gets, and their code.

:class:`TypeRefs` is the one object the rest of the generator (and the
skeleton template's context builder) talks to.  It discovers the types to
emit from roots (map keys/values, globals, ``--type``), names them
deterministically, and knows for any BTF type id:

* :meth:`TypeRefs.hint` -- the Python type of a value (``int``, ``bytes``,
  ``Event``, ``list[int]``, ``Color | int``);
* :meth:`TypeRefs.codec` -- a Python expression, valid in the generated
  module, for a :mod:`btfgen.runtime.codec` object (``.size``,
  ``.decode(buf, offset=0)``, ``.encode(value)``);
* :meth:`TypeRefs.ensure` -- make sure the type gets a class (if it is a
  struct/union/enum, or contains one).

After everything is ensured, :meth:`TypeRefs.classes` freezes the model and
returns :class:`EnumClass`/:class:`RecordClass` objects, in an order where
every class comes after the classes it needs, ready for the template.

Naming contract with the skeleton template: generated record and enum class
names start with a capital letter and never with the skeleton class name
(``reserved_prefix``); every other module-level name btfgen emits starts with
``_`` and contains ``__`` (``_Event__d``), ends in ``_VALUES`` or is
``_Factory`` (see :mod:`btfgen.gen.record_methods`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from btfgen.btf_model import (
    Array,
    Btf,
    BtfType,
    Enum,
    Enum64,
    Float,
    Int,
    Kind,
    Ptr,
    Struct,
    Typedef,
    Union,
    Var,
)
from btfgen.errors import BtfgenError, quote_name, show
from btfgen.gen.naming import (
    MODULE_NAMES,
    RECORD_API,
    UniqueNames,
    attr_name,
    class_name,
    enum_member_name,
)
from btfgen.gen.plans import BitMember, BitRun, Plan, RecordPlan, Scalar, ScalarPlan, int_code

#: Import alias of :mod:`btfgen.runtime.codec` inside generated modules.
CODEC_MODULE = "_codec"

#: Columns generated lines keep within (the project's ruff line length).
LINE_WIDTH = 100

#: Python names of 2/4/8-byte floats in ``struct``.
FLOAT_CODES = {2: "e", 4: "f", 8: "d"}

_CSTR = 'partition(b"\\0")[0]'


class GenerateError(BtfgenError):
    """The object's types cannot be turned into a module (one-line message)."""


@dataclass
class EnumClass:
    """An ``IntEnum`` to emit."""

    type_id: int
    name: str
    c_spelling: str
    size: int
    signed: bool
    #: (BTF enumerator name, value), BTF order.
    values: list[tuple[str, int]]
    #: (Python member name, value), filled by :meth:`TypeRefs.classes`.
    members: list[tuple[str, int]] = field(default_factory=list)
    kind = "enum"

    @property
    def values_name(self) -> str:
        """The module-level ``dict[int, Enum]`` used to decode without raising."""
        return f"_{self.name}_VALUES"


#: How a field's default begins when it is a default factory.
_FACTORY = "field(default_factory="


@dataclass
class RecordField:
    """A dataclass field: a named member (anonymous members flattened).

    ``default`` is the text after ``=`` in the field's declaration: a value
    (``0``, ``b""``) or ``field(default_factory=...)`` for mutable values.
    """

    c_name: str
    hint: str
    default: str
    attr: str = ""

    @property
    def fresh(self) -> bool:
        """Whether the default is a factory (a fresh value per record)."""
        return self.default.startswith(_FACTORY)

    @property
    def value(self) -> str:
        """An expression for the default value (what the factory returns)."""
        if not self.fresh:
            return self.default
        inner = self.default[len(_FACTORY):-1]
        if inner.startswith("lambda: "):
            return inner[len("lambda: "):]
        return "[]" if inner == "list" else f"{inner}()"


@dataclass
class Slot:
    """Bytes ``[start, end)`` of a record decoded together: one value field or a bitfield run."""

    start: int
    end: int
    fields: list[int]
    plan: Plan | None = None
    bits: BitRun | None = None

    def dfmt(self) -> list[str]:
        if self.bits is not None:
            return [self.bits.code()]
        assert self.plan is not None
        return self.plan.dfmt()

    def efmt(self) -> list[str]:
        if self.bits is not None:
            return [self.bits.code()]
        assert self.plan is not None
        return self.plan.efmt()

    def nvals(self) -> int:
        return 1 if self.bits is not None else self.plan.nvals()  # type: ignore[union-attr]


@dataclass
class Flex:
    """A flexible array member at byte ``offset``: takes the rest of the buffer."""

    field_index: int
    offset: int
    #: "scalar" (``code`` is a struct item), "cstr", "record" (``cls``) or "raw".
    mode: str
    esize: int = 1
    code: str = ""
    cls: str = ""
    #: The element type itself ends in a flexible array (each element then
    #: gets exactly ``esize`` bytes).
    cls_flex: bool = False


@dataclass
class RecordClass:
    """A dataclass to emit for a struct or union."""

    type_id: int
    name: str
    c_spelling: str
    size: int
    is_union: bool
    fields: list[RecordField] = field(default_factory=list)
    slots: list[Slot] = field(default_factory=list)
    flex: Flex | None = None
    deps: set[str] = field(default_factory=set)
    #: Filled by :func:`btfgen.gen.record_code.render_record`.
    structs: list[tuple[str, str]] = field(default_factory=list)
    from_body: list[str] = field(default_factory=list)
    to_body: list[str] = field(default_factory=list)
    #: Has overlapping members: keeps the decoded bytes in ``_raw``.
    keeps_raw: bool = False
    kind = "record"


TypeClass = EnumClass | RecordClass


def _is_char(t: BtfType) -> bool:
    return isinstance(t, Int) and t.size == 1 and not t.is_bool and (
        t.name == "char" or t.is_char)


class TypeRefs:
    """Python types, codecs and classes for the BTF types of one module.

    ``byteorder`` is the object's ("little"/"big"); ``reserved_prefix`` is the
    skeleton class name, which no generated class name starts with.
    """

    def __init__(self, btf: Btf, byteorder: str = "little", reserved_prefix: str = "") -> None:
        self.btf = btf
        self.byteorder = byteorder
        self.bo = "<" if byteorder == "little" else ">"
        self.reserved_prefix = reserved_prefix
        #: Whether any :meth:`codec` expression was handed out (the module must
        #: then import :data:`CODEC_MODULE`).
        self.uses_codec = False
        self._names = UniqueNames(MODULE_NAMES)
        self._classes: dict[int, TypeClass] = {}
        self._order: list[int] = []
        self._building: set[int] = set()
        #: C spelling (``struct event``, typedef names) -> class name, for TYPES.
        self.c_names: dict[str, str] = {}
        #: BTF id of a named struct/union/enum -> its spelling in ``c_names``:
        #: BTF may hold two ``struct dup``; the later ones are ``struct dup___2``
        #: ... (bpftool's convention), which is also their tag in the cdef.
        self.tag_spellings: dict[int, str] = {}
        self._frozen = False

    # -- public interface ---------------------------------------------------

    def ensure(self, type_id: int, place: str | None = None) -> None:
        """Emit the class(es) a value of ``type_id`` needs.  ``place`` names
        anonymous types (e.g. the map or variable name)."""
        self._ensure(type_id, place)

    def hint(self, type_id: int) -> str:
        """The Python type expression for a value of ``type_id``."""
        return self._plan(type_id, 0, None).hint

    def codec(self, type_id: int, min_size: int | None = None) -> str:
        """A codec expression for ``type_id`` (see :mod:`btfgen.runtime.codec`).

        ``min_size``: the records of a struct/union ``type_id`` may arrive this
        short (variable-length records); the codec zero-pads them to decode."""
        self.uses_codec = True
        t, _ = self._resolve(type_id)
        if min_size is not None and isinstance(t, (Struct, Union)) and min_size < t.size:
            return (f"{CODEC_MODULE}.RecordCodec({self._ensure(type_id, None)}, "
                    f"min_size={max(0, int(min_size))})")
        return self._codec(type_id)

    def raw_codec(self, size: int) -> str:
        """A codec expression for ``size`` opaque bytes (a map without BTF types)."""
        self.uses_codec = True
        return f"{CODEC_MODULE}.RawCodec({int(size)})"

    def class_name(self, type_id: int) -> str | None:
        """The generated class for a struct/union/enum type (after ensure), else None."""
        t = self.btf.skip_modifiers(type_id)
        c = self._classes.get(t.id)
        return c.name if c else None

    def size(self, type_id: int) -> int:
        """sizeof the type, per BTF."""
        return self.btf.size_of(type_id)

    def classes(self) -> list[TypeClass]:
        """Every class to emit: enums first, then records after their
        dependencies.  Freezes the model (no more :meth:`ensure`)."""
        if not self._frozen:
            self._frozen = True
            self._name_members()
        enums = [c for i in self._order if isinstance(c := self._classes[i], EnumClass)]
        records: list[TypeClass] = []
        seen: set[str] = set()
        by_name = {c.name: c for c in self._classes.values()}

        def visit(c: RecordClass) -> None:
            if c.name in seen:
                return
            seen.add(c.name)
            for dep in sorted(c.deps):
                d = by_name.get(dep)
                if isinstance(d, RecordClass):
                    visit(d)
            records.append(c)

        for i in self._order:
            c = self._classes[i]
            if isinstance(c, RecordClass):
                visit(c)
        return [*enums, *records]

    # -- discovery ----------------------------------------------------------

    def _resolve(self, type_id: int) -> tuple[BtfType, str | None]:
        """Skip modifiers and VARs; also return the outermost typedef name on the way."""
        t, typedef, _ = self._resolve_chain(type_id)
        return t, typedef

    def _resolve_chain(self, type_id: int) -> tuple[BtfType, str | None, list[str]]:
        """:meth:`_resolve` plus every typedef name passed (aliases for TYPES)."""
        t = self.btf.type(type_id)
        typedef: str | None = None
        chain: list[str] = []
        for _ in range(4096):
            if isinstance(t, Var):
                t = self.btf.type(t.type_id)
                continue
            if t.kind not in (Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.RESTRICT,
                              Kind.TYPE_TAG):
                break
            if isinstance(t, Typedef) and t.name:
                chain.append(t.name)
                if typedef is None:
                    typedef = t.name
            t = self.btf.type(t.type_id)  # type: ignore[union-attr]
        else:
            raise GenerateError(f"reference loop through type id {type_id}")
        return t, typedef, chain

    def _alias(self, names: list[str], cls: str) -> None:
        for n in names:
            self.c_names.setdefault(n, cls)

    def _new_name(self, t: BtfType, typedef: str | None, place: str | None) -> str:
        base = t.name or typedef or place or f"anon_{t.id}"
        name = class_name(base)
        if self.reserved_prefix and name.startswith(self.reserved_prefix):
            name = "T" + name
        return self._names.add(name)

    def _ensure(self, type_id: int, place: str | None) -> str | None:
        t, typedef, aliases = self._resolve_chain(type_id)
        if isinstance(t, (Enum, Enum64)):
            c = self._classes.get(t.id)
            if c is None:
                self._check_open()
                name = self._new_name(t, typedef, place)
                values = [(v.name, v.value) for v in t.values]
                c = EnumClass(t.id, name, self._spelling(t), t.size, t.signed, values)
                self._register(t, c)
            self._alias(aliases, c.name)
            return c.name
        if isinstance(t, (Struct, Union)):
            c = self._classes.get(t.id)
            if c is None:
                if t.id in self._building:
                    raise GenerateError(f"type id {t.id} contains itself by value")
                self._check_open()
                name = self._new_name(t, typedef, place)
                rec = RecordClass(t.id, name, self._spelling(t), t.size,
                                  isinstance(t, Union))
                self._building.add(t.id)
                try:
                    self._collect(t, 0, rec, "", top=True)
                finally:
                    self._building.discard(t.id)
                self._register(t, rec)
                c = rec
            self._alias(aliases, c.name)
            return c.name
        if isinstance(t, Array):
            return self._ensure(t.type_id, place)
        return None

    def _spelling(self, t: BtfType) -> str:
        if t.name:
            return self.btf.c_spelling(t.id)
        return f"{self.btf.c_spelling(t.id)}<anonymous>"

    def _check_open(self) -> None:
        if self._frozen:
            raise RuntimeError("TypeRefs.ensure() after classes(): ensure types before rendering")

    def _register(self, t: BtfType, c: TypeClass) -> None:
        self._classes[t.id] = c
        self._order.append(t.id)
        if t.name:
            spelling = unique = self.btf.c_spelling(t.id)
            n = 2
            while unique in self.c_names:
                unique = f"{spelling}___{n}"
                n += 1
            self.c_names[unique] = c.name
            self.tag_spellings[t.id] = unique

    # -- record layout ------------------------------------------------------

    def _collect(self, t: Struct | Union, base_bits: int, rec: RecordClass, prefix: str,
                 top: bool) -> None:
        """Append ``t``'s members (anonymous members flattened) to ``rec``."""
        btf = self.btf
        is_union = isinstance(t, Union)
        run: list[tuple[int, int, BitMember]] = []  # (abs_bit, width, member)

        def flush() -> None:
            if not run:
                return
            start = min(b for b, _, _ in run) // 8
            end = max((b + w + 7) // 8 for b, w, _ in run)
            members = [BitMember(m.attr_index, b - start * 8, w, m.signed, m.kind, m.hint)
                       for b, w, m in run]
            rec.slots.append(Slot(start, end, [m.attr_index for m in members],
                                  bits=BitRun(end - start, self.byteorder, members)))
            run.clear()

        last = len(t.members) - 1
        for idx, m in enumerate(t.members):
            bf = btf.member_bitfield(t, m)
            mt, _ = self._resolve(m.type_id)
            cname = f"{prefix}{m.name}"
            if bf.size:
                if not m.name:
                    continue  # unnamed padding bitfield
                abs_bit = base_bits + bf.bit_offset
                member = self._bit_member(mt, m.type_id, len(rec.fields), bf.size, rec.name)
                rec.fields.append(RecordField(cname, member.hint, "False" if member.kind == "bool"
                                              else "0"))
                s, e = abs_bit // 8, (abs_bit + bf.size + 7) // 8
                if run and (is_union or s >= max((b + w + 7) // 8 for b, w, _ in run)):
                    flush()
                run.append((abs_bit, bf.size, member))
                if is_union:
                    flush()
                _ = e
                continue
            flush()
            bits = base_bits + m.bit_offset
            if bits % 8:
                raise GenerateError(f"{show(rec.c_spelling)}: member {quote_name(m.name)}"
                                    " is not byte-aligned")
            off = bits // 8
            if not m.name:
                if isinstance(mt, (Struct, Union)):
                    self._collect(mt, bits, rec, prefix, top=False)
                continue
            if (top and not is_union and idx == last and isinstance(mt, Array)
                    and mt.nelems == 0):
                rec.flex = self._flex(mt, len(rec.fields), off, rec, cname)
                continue
            plan = self._plan(m.type_id, off, f"{rec.name}_{m.name}")
            if off + plan.size > rec.size:
                raise GenerateError(f"{show(rec.c_spelling)}: member {quote_name(m.name)}"
                                    " ends past the end")
            rec.deps.update(plan.deps())
            rec.fields.append(RecordField(cname, plan.hint, plan.default))
            rec.slots.append(Slot(off, off + plan.size, [len(rec.fields) - 1], plan=plan))
        flush()

    def _bit_member(self, mt: BtfType, type_id: int, index: int, width: int,
                    owner: str) -> BitMember:
        if isinstance(mt, Int):
            if mt.is_bool:
                return BitMember(index, 0, width, False, "bool", "bool")
            return BitMember(index, 0, width, mt.signed)
        if isinstance(mt, (Enum, Enum64)):
            name = self._ensure(type_id, owner)
            assert name is not None
            c = self._classes[mt.id]
            assert isinstance(c, EnumClass)
            return BitMember(index, 0, width, mt.signed, c.values_name, f"{name} | int")
        raise GenerateError(f"bitfield of {mt.kind.name} type id {mt.id}")

    def _flex(self, arr: Array, index: int, off: int, rec: RecordClass, cname: str) -> Flex:
        et, _ = self._resolve(arr.type_id)
        if _is_char(et):
            rec.fields.append(RecordField(cname, "bytes", 'b""'))
            return Flex(index, off, "cstr")
        if isinstance(et, (Struct, Union)):
            name = self._ensure(arr.type_id, f"{rec.name}_{cname}")
            assert name is not None
            rec.deps.add(name)
            rec.fields.append(RecordField(cname, f"list[{name}]", "field(default_factory=list)"))
            return Flex(index, off, "record", et.size, cls=name, cls_flex=self._has_flex(et))
        plan = self._plan(arr.type_id, off, f"{rec.name}_{cname}")
        if isinstance(plan, ScalarPlan) and not plan.dims and not plan.scalar.code[0].isdigit() \
                and plan.scalar.dconv is None and plan.size:
            rec.fields.append(RecordField(cname, f"list[{plan.hint}]",
                                          "field(default_factory=list)"))
            return Flex(index, off, "scalar", plan.size, code=plan.scalar.code)
        rec.fields.append(RecordField(cname, "bytes", 'b""'))
        return Flex(index, off, "raw")

    # -- plans --------------------------------------------------------------

    def _network_order(self, t: BtfType, type_id: int) -> bool:
        """Whether ``type_id`` is an integer typed ``__be16``/``__be32``/``__be64``
        (directly or through other typedefs): a value in network byte order."""
        if not isinstance(t, Int) or t.is_bool or t.size not in (2, 4, 8):
            return False
        return f"__be{t.size * 8}" in self._resolve_chain(type_id)[2]

    def _scalar(self, t: BtfType, type_id: int, place: str | None) -> Scalar | None:
        bo = self.byteorder
        if self._network_order(t, type_id):
            # decoded to the host value and encoded back: addresses and ports
            # come out right without repacking
            assert isinstance(t, Int)
            return Scalar(f"{t.size}s", t.size, "int", "0",
                          f'int.from_bytes({{0}}, "big", signed={t.signed})',
                          f'{{0}}.to_bytes({t.size}, "big", signed={t.signed})')
        if isinstance(t, Int):
            code = int_code(t.size, t.signed)
            if t.is_bool:
                if t.size == 1:
                    return Scalar("?", 1, "bool", "False")
                return Scalar(code or f"{t.size}s", t.size, "bool", "False",
                              "bool({0})" if code else f'bool(int.from_bytes({{0}}, "{bo}"))',
                              None if code else f'int({{0}}).to_bytes({t.size}, "{bo}")')
            if code:
                return Scalar(code, t.size, "int", "0")
            return Scalar(f"{t.size}s", t.size, "int", "0",
                          f'int.from_bytes({{0}}, "{bo}", signed={t.signed})',
                          f'{{0}}.to_bytes({t.size}, "{bo}", signed={t.signed})')
        if isinstance(t, Ptr):
            return Scalar("Q", 8, "int", "0")
        if isinstance(t, Float):
            code = FLOAT_CODES.get(t.size)
            if code:
                return Scalar(code, t.size, "float", "0.0")
            return Scalar(f"{t.size}s", t.size, "bytes", 'b""')
        if isinstance(t, (Enum, Enum64)):
            name = self._ensure(type_id, place)
            c = self._classes[t.id]
            assert isinstance(c, EnumClass) and name is not None
            code = int_code(t.size, t.signed)
            vals = c.values_name
            if code:
                return Scalar(code, t.size, f"{name} | int", "0", f"{vals}.get({{0}}, {{0}})",
                              deps=(name,))
            return Scalar(f"{t.size}s", t.size, f"{name} | int", "0",
                          f'{vals}.get(int.from_bytes({{0}}, "{bo}", signed={t.signed}))',
                          f'int({{0}}).to_bytes({t.size}, "{bo}", signed={t.signed})',
                          deps=(name,))
        return None

    def _plan(self, type_id: int, off: int, place: str | None) -> Plan:
        t, _ = self._resolve(type_id)
        sc = self._scalar(t, type_id, place)
        if sc is not None:
            return ScalarPlan(sc)
        if isinstance(t, (Struct, Union)):
            name = self._ensure(type_id, place)
            assert name is not None
            return RecordPlan(name, t.size, off, flex=self._has_flex(t))
        if isinstance(t, Array):
            dims: list[int] = []
            et: BtfType = t
            elem_id = type_id
            while isinstance(et, Array):
                dims.append(et.nelems)
                elem_id = et.type_id
                et, _ = self._resolve(elem_id)
            if _is_char(et) and dims[-1] > 0:
                n = dims.pop()
                cs = Scalar(f"{n}s", n, "bytes", 'b""', f"{{0}}.{_CSTR}")
                return ScalarPlan(cs, tuple(dims))
            sc = self._scalar(et, elem_id, place)
            if sc is not None:
                return ScalarPlan(sc, tuple(dims))
            if isinstance(et, (Struct, Union)):
                name = self._ensure(elem_id, place)
                assert name is not None
                return RecordPlan(name, et.size, off, tuple(dims), self._has_flex(et))
            t = et
        raise GenerateError(f"type id {t.id} ({t.kind.name}) cannot be a value")

    def _has_flex(self, t: BtfType) -> bool:
        c = self._classes.get(t.id)
        return isinstance(c, RecordClass) and c.flex is not None

    def _codec(self, type_id: int) -> str:
        t, _ = self._resolve(type_id)
        m = CODEC_MODULE
        if isinstance(t, (Struct, Union)):
            return f"{m}.RecordCodec({self._ensure(type_id, None)})"
        if isinstance(t, Array):
            et, _ = self._resolve(t.type_id)
            if _is_char(et):
                return f"{m}.CStrCodec({t.nelems})"
            return f"{m}.ArrayCodec({self._codec(t.type_id)}, {t.nelems})"
        sc = self._scalar(t, type_id, None)
        if sc is None:
            raise GenerateError(f"type id {t.id} ({t.kind.name}) cannot be a value")
        fmt = f'"{self.bo}{sc.code}"'
        if isinstance(t, (Enum, Enum64)):
            if sc.code[0].isdigit():
                return f"{m}.BigIntCodec({t.size}, {t.signed}, \"{self.byteorder}\")"
            return f"{m}.EnumCodec({sc.deps[0]}, {fmt})"
        if sc.hint == "bool" and sc.code == "?":
            return f"{m}.BoolCodec({fmt})"
        if sc.hint == "float":
            return f"{m}.FloatCodec({fmt})"
        if sc.hint == "bytes":
            return f"{m}.RawCodec({t.size})"  # type: ignore[union-attr]
        if self._network_order(t, type_id):
            return f"{m}.IntCodec(\">{int_code(sc.size, isinstance(t, Int) and t.signed)}\")"
        if sc.code[0].isdigit() or sc.hint == "bool":
            signed = isinstance(t, Int) and t.signed
            return f"{m}.BigIntCodec({sc.size}, {signed}, \"{self.byteorder}\")"
        return f"{m}.IntCodec({fmt})"

    # -- final names --------------------------------------------------------

    def _name_members(self) -> None:
        class_names = {c.name for c in self._classes.values()}
        class_names |= {c.values_name for c in self._classes.values()
                        if isinstance(c, EnumClass)}
        for c in self._classes.values():
            if isinstance(c, EnumClass):
                uniq = UniqueNames()
                c.members = [(uniq.add(enum_member_name(n)), v) for n, v in c.values]
            else:
                uniq = UniqueNames(class_names | RECORD_API | MODULE_NAMES)
                for f in c.fields:
                    leaf = f.c_name.rsplit(".", 1)[-1]
                    f.attr = uniq.add(attr_name(leaf, class_names))

