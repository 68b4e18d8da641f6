"""The Python source of a record's ``from_bytes``/``to_bytes``.

Slots that do not overlap (all of a struct's, the first member of a union)
form *layer 0*: one ``struct.Struct`` for the whole record, unpacked once.
Overlapping slots (further union members, anonymous unions inside structs)
each get a small Struct of their own at their offset.

A record with overlapping slots keeps the bytes it was decoded from (the
hidden ``_raw`` field, not compared).  Encoding starts from them (zeros for a
record built by hand) and writes a slot only where the bytes so far do not
decode to its values -- and, in a record built by hand, only slots not left
at their default.  So a decoded record re-encodes to exactly its bytes, the
member you changed is the one written, and padding and bytes of union members
nobody touched survive.
"""

from __future__ import annotations

import bisect

from btfgen.gen.model import LINE_WIDTH, Flex, RecordClass, RecordField, Slot

_MAX_LITERAL = 64


def format_literal(fmt: str) -> list[str]:
    """``fmt`` as one or more implicitly concatenated string literals."""
    return [f'"{fmt[i:i + _MAX_LITERAL]}"' for i in range(0, len(fmt), _MAX_LITERAL)] or ['""']


def _layer0(rec: RecordClass) -> tuple[list[Slot], list[Slot]]:
    # The bytes taken so far: disjoint intervals sorted by start, so that a
    # slot's overlap test is a bisection, not a scan (32k-member structs).
    starts: list[int] = []
    ends: list[int] = []
    layer: list[Slot] = []
    overlays: list[Slot] = []
    for s in rec.slots:
        if s.end > s.start:
            i = bisect.bisect_right(starts, s.start)
            if (i and ends[i - 1] > s.start) or (i < len(starts) and starts[i] < s.end):
                overlays.append(s)
                continue
            starts.insert(i, s.start)
            ends.insert(i, s.end)
        layer.append(s)
    layer.sort(key=lambda s: s.start)
    return layer, overlays


def _slot_decode(s: Slot, tv: str, i: int, buf: str, off: str) -> dict[int, str]:
    if s.bits is not None:
        return {m.attr_index: s.bits.decode(m, tv, i) for m in s.bits.members}
    assert s.plan is not None
    return {s.fields[0]: s.plan.decode(tv, i, buf, off)}


def _slot_encode(s: Slot, rec: RecordClass) -> list[str]:
    if s.bits is not None:
        return [s.bits.encode([f"self.{rec.fields[m.attr_index].attr}" for m in s.bits.members])]
    assert s.plan is not None
    return s.plan.encode(f"self.{rec.fields[s.fields[0]].attr}")


def field_lines(f: RecordField) -> list[str]:
    """The dataclass field declaration, wrapped if it is too long."""
    line = f"    {f.attr}: {f.hint} = {f.default}"
    if len(line) <= LINE_WIDTH or not f.default.startswith("field("):
        return [line]
    inner = f.default[len("field("):-1]
    return [f"    {f.attr}: {f.hint} = field(", f"        {inner}", "    )"]


def _overlay_check(rec: RecordClass, s: Slot, od: str, oe: str, ind: str) -> list[str]:
    """to_bytes lines writing overlapping slot ``s`` into ``b`` if its value is not
    what the original bytes ``src`` hold: a member changed since decoding wins
    over the unchanged members that share its bytes, whatever their order."""
    lines: list[str] = []
    if s.bits is not None:
        # A bitfield run: compare the storage bits its members own.
        enc = s.bits.encode_int([f"self.{rec.fields[m.attr_index].attr}"
                                 for m in s.bits.members])
        raw = s.bits.raw("w", 0)
        mask = s.bits.mask()
        keep_bits = (1 << (8 * s.bits.size)) - 1 ^ mask
        # "bits", not "new": that may hold the packed bytes of a struct already
        lines += _assign("bits", enc, ind)
        lines.append(f"{ind}w = {od}.unpack_from(src, {s.start})")
        lines.append(f"{ind}if (keep or bits) and {raw} & {mask:#x} != bits:")
        # merged into the bytes as built so far: other members' bits stay
        lines.append(f"{ind}    w = {od}.unpack_from(b, {s.start})")
        merged = f"{raw} & {keep_bits:#x} | bits"
        if s.bits.code().endswith("s"):
            merged = f'({merged}).to_bytes({s.bits.size}, "{s.bits.byteorder}")'
        lines += _call(f"{oe}.pack_into(", ["b", str(s.start), merged], ind + "    ")
        return lines
    assert s.plan is not None
    i = s.fields[0]
    name = f"self.{rec.fields[i].attr}"
    got = _slot_decode(s, "w", 0, "src", "0")[i]
    if s.nvals():
        lines.append(f"{ind}w = {od}.unpack_from(src, {s.start})")
    conds = [f"(keep or {name} != {rec.fields[i].value})",
             f"{_bits(rec.fields[i], got)} != {_bits(rec.fields[i], name)}"]
    one = f"{ind}if {' and '.join(conds)}:"
    if len(one) <= LINE_WIDTH:
        lines.append(one)
    else:
        lines += [f"{ind}if (", f"{ind}    {conds[0]}", f"{ind}    and {conds[1]}", f"{ind}):"]
    lines += _call(f"{oe}.pack_into(", ["b", str(s.start), *s.plan.encode(name)], ind + "    ")
    return lines


def _bits(f: RecordField, expr: str) -> str:
    """A float compared by its bits, so a NaN equals itself when deciding
    whether the bytes already hold a value."""
    return f'struct.pack("d", {expr})' if f.hint == "float" else expr


def _assign(var: str, expr: str, ind: str) -> list[str]:
    one = f"{ind}{var} = {expr}"
    if len(one) <= LINE_WIDTH or " | " not in expr or ".to_bytes(" in expr:
        return [one]
    parts = expr.split(" | ")
    return [f"{ind}{var} = (", f"{ind}    {parts[0]}", *[f"{ind}    | {p}" for p in parts[1:]],
            f"{ind})"]


def _wrap_arg(arg: str, indent: str) -> list[str]:
    """``arg,`` on one line, or a long ``a | b | c`` bitfield expression over several."""
    if len(indent) + len(arg) < LINE_WIDTH or " | " not in arg or ".to_bytes(" in arg:
        return [f"{indent}{arg},"]
    parts = arg.split(" | ")
    return [f"{indent}(", f"{indent}    {parts[0]}", *[f"{indent}    | {p}" for p in parts[1:]],
            f"{indent}),"]


def _call(head: str, args: list[str], indent: str, tail: str = ")") -> list[str]:
    if not args:
        return [f"{indent}{head}{tail}"]
    one = f"{indent}{head}{', '.join(args)}{tail}"
    if len(one) <= 96 and len(args) <= 3:
        return [one]
    lines = [f"{indent}{head}"]
    for a in args:
        lines += _wrap_arg(a, indent + "    ")
    return [*lines, f"{indent}{tail}"]


def render_record(rec: RecordClass, bo: str) -> None:
    """Fill ``rec.structs``, ``rec.from_body`` and ``rec.to_body`` (lines of
    method bodies, indented for the method)."""
    layer, overlays = _layer0(rec)
    d_items: list[str] = []
    e_items: list[str] = []
    pos = 0
    decode: dict[int, str] = {}
    enc_args: list[str] = []
    nv = 0
    for s in layer:
        if s.start > pos:
            d_items.append(f"{s.start - pos}x")
            e_items.append(f"{s.start - pos}x")
        decode.update(_slot_decode(s, "v", nv, "buf", "offset"))
        enc_args += _slot_encode(s, rec)
        d_items += s.dfmt()
        e_items += s.efmt()
        nv += s.nvals()
        pos = max(pos, s.end)
    if rec.size > pos:
        d_items.append(f"{rec.size - pos}x")
        e_items.append(f"{rec.size - pos}x")
    d_fmt = bo + "".join(d_items)
    e_fmt = bo + "".join(e_items)
    d_name = f"_{rec.name}__s"
    e_name = d_name
    rec.structs = [(d_name, d_fmt)]
    if e_fmt != d_fmt:
        d_name, e_name = f"_{rec.name}__d", f"_{rec.name}__e"
        rec.structs = [(d_name, d_fmt), (e_name, e_fmt)]

    ind = "        "
    body: list[str] = []
    if nv:
        body.append(f"{ind}v = {d_name}.unpack_from(buf, offset)")
    else:
        # Still checks that the buffer holds SIZE bytes.
        body.append(f"{ind}{d_name}.unpack_from(buf, offset)")
    ov_checks: list[str] = []
    for k, s in enumerate(overlays, 1):
        of, oef = bo + "".join(s.dfmt()), bo + "".join(s.efmt())
        if of == oef:  # one Struct serves both ways, as for the main layer
            od = oe = f"_{rec.name}__o{k}"
            rec.structs.append((od, of))
        else:
            od, oe = f"_{rec.name}__o{k}d", f"_{rec.name}__o{k}e"
            rec.structs += [(od, of), (oe, oef)]
        tv = f"w{k}"
        off_expr = f"offset + {s.start}" if s.start else "offset"
        if s.nvals():
            body.append(f"{ind}{tv} = {od}.unpack_from(buf, {off_expr})")
        decode.update(_slot_decode(s, tv, 0, "buf", "offset"))
        ov_checks += _overlay_check(rec, s, od, oe, ind)
    flex = rec.flex
    if flex is not None:
        decode[flex.field_index] = _flex_decode(flex, bo)
    args = [decode[i] for i in range(len(rec.fields))]
    plain = [f"v[{i}]" for i in range(nv)]
    if args == plain and not overlays and nv:
        body = [f"{ind}return cls(*{d_name}.unpack_from(buf, offset))"]
    else:
        if overlays:
            args.append(f"bytes(buf[offset:offset + {rec.size}])")
        body += _call("return cls(", args, ind)
    rec.from_body = body

    to: list[str] = []
    if overlays:
        rec.keeps_raw = True
        to += _layer0_write(rec, layer, _decode_src(layer, rec), enc_args, d_name, e_name, nv, ind)
        to += ov_checks
        base = "bytes(b)"
    elif flex is None:
        rec.to_body = _call(f"return {e_name}.pack(", enc_args, ind)
        return
    else:
        to += _call("data = " + f"{e_name}.pack(", enc_args, ind)
        base = "data"
    if flex is None:
        to.append(f"{ind}return {base}")
    else:
        fenc = _flex_encode(flex, rec, bo)
        if flex.offset >= rec.size:
            to.append(f"{ind}return {base} + {fenc}")
        else:
            to.append(f"{ind}return ({base}[:{flex.offset}] + {fenc}).ljust({rec.size}, b\"\\0\")")
    rec.to_body = to


def _decode_src(layer: list[Slot], rec: RecordClass) -> dict[int, str]:
    """Layer-0 decode expressions over the original bytes ``src``."""
    out: dict[int, str] = {}
    nv = 0
    for s in layer:
        out.update(_slot_decode(s, "v", nv, "src", "0"))
        nv += s.nvals()
    return out


def _ranges(layer: list[Slot]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s in sorted(layer, key=lambda s: s.start):
        if s.end <= s.start:
            continue
        if merged and s.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], s.end))
        else:
            merged.append((s.start, s.end))
    return merged


def _layer0_write(rec: RecordClass, layer: list[Slot], dec: dict[int, str], enc_args: list[str],
                  d_name: str, e_name: str, nv: int, ind: str) -> list[str]:
    """Start from the bytes the record was decoded from (zeros if built by hand)
    and write layer 0 only if its values changed, leaving padding and the bytes
    of other union members alone."""
    size = rec.size
    lines = [f"{ind}keep = len(self._raw) == {size}",
             f"{ind}src = self._raw if keep else bytes({size})",
             f"{ind}b = bytearray(src)"]
    fields = [i for s in layer for i in s.fields]
    if not fields:
        return lines
    if nv:
        lines.append(f"{ind}v = {d_name}.unpack_from(src, 0)")
    got = [_bits(rec.fields[i], dec[i]) for i in fields]
    have = [_bits(rec.fields[i], f"self.{rec.fields[i].attr}") for i in fields]
    cond = f"{ind}if not keep or ({', '.join(got)},) != ({', '.join(have)},):"
    if len(cond) <= LINE_WIDTH:
        lines.append(cond)
    else:
        lines += [f"{ind}if not keep or (", *[f"{ind}    {g}," for g in got], f"{ind}) != (",
                  *[f"{ind}    {h}," for h in have], f"{ind}):"]
    lines += _call(f"new = {e_name}.pack(", enc_args, ind + "    ")
    for a, z in _ranges(layer):
        lines.append(f"{ind}    b[{a}:{z}] = new[{a}:{z}]")
    return lines


def _flex_decode(flex: Flex, bo: str) -> str:
    start = f"offset + {flex.offset}" if flex.offset else "offset"
    if flex.mode == "cstr":
        return f'bytes(buf[{start}:]).partition(b"\\0")[0]'
    if flex.mode == "raw":
        return f"bytes(buf[{start}:])"
    count = f"(len(buf) - {start.replace('offset + ', 'offset - ')}) // {flex.esize}"
    if flex.mode == "scalar":
        return f'list(struct.unpack_from(f"{bo}{{{count}}}{flex.code}", buf, {start}))'
    at = f"{start} + k * {flex.esize}"
    if flex.cls_flex:
        item = f"{flex.cls}.from_bytes(bytes(buf[{at}:{at} + {flex.esize}]))"
    else:
        item = f"{flex.cls}.from_bytes(buf, {at})"
    return f"[{item} for k in range({count})]"


def _flex_encode(flex: Flex, rec: RecordClass, bo: str) -> str:
    value = f"self.{rec.fields[flex.field_index].attr}"
    if flex.mode in ("cstr", "raw"):
        return f"bytes({value})"
    if flex.mode == "scalar":
        return f'struct.pack(f"{bo}{{len({value})}}{flex.code}", *{value})'
    return f'b"".join(x.to_bytes() for x in {value})'
