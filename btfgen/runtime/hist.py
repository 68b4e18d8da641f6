"""Histograms as bcc and libbpf-tools print them.

Two slot conventions exist for log2 histograms, and they differ by one:

* ``log2_base="libbpf"`` (libbpf-tools' ``log2()``): slot 0 counts values 0 and 1,
  slot ``i`` counts ``[2**i, 2**(i+1))``;
* ``log2_base="bcc"`` (bcc's ``bpf_log2l()``): slot 0 counts 0, slot 1 counts 1,
  slot ``i`` counts ``[2**(i-1), 2**i)``.

The convention is always an explicit argument: printing libbpf-tools slots with
bcc's labels mislabels every bucket.  The output is byte-identical to the
printer of the same family (bcc's ``table.py``, libbpf-tools' ``trace_helpers.c``)::

    print_log2_hist(skel.maps.hist[0].slots, "usecs", log2_base="libbpf")

Maps get the same as methods (:class:`HistogramMethods`): ``map.print_log2_hist()``,
``map.print_linear_hist()`` and ``map.log2_hist()`` (the slots as data, per-CPU
values summed, optionally split by section like bcc's ``-P``/``-D`` modes).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Literal, Protocol, TextIO

Log2Base = Literal["libbpf", "bcc"]

#: Star columns of a histogram line (both families).
STARS_MAX = 40
#: Slot count bcc reserves for a log2 histogram (any 64-bit value).
BCC_LOG2_SLOTS = 65


def _check_base(log2_base: str) -> None:
    if log2_base not in ("libbpf", "bcc"):
        raise ValueError(f"log2_base must be 'libbpf' or 'bcc', not {log2_base!r}")


def slot_range(slot: int, *, log2_base: Log2Base) -> tuple[int, int]:
    """The values ``(low, high)`` (both included) a log2 slot counts, as labelled."""
    _check_base(log2_base)
    i = slot + 1 if log2_base == "libbpf" else slot
    low, high = (1 << i) >> 1, (1 << i) - 1
    return (low - 1, high) if low == high else (low, high)


def _bcc_stars(val: int, val_max: int, width: int) -> str:
    # bcc's _stars(): a float comparison per star, then "+" for overflow.
    n = 0
    while not (n > (width * val / val_max) - 1 or n > width - 1):
        n += 1
    text = "*" * n
    if val > val_max:
        text = text[:-1] + "+"
    return text.ljust(width)


def _c_stars(val: int, val_max: int, width: int) -> str:
    # trace_helpers.c print_stars(): unsigned 32-bit arithmetic (a count above ~107
    # million wraps the product, as in C), the "+" after the padding.
    n = ((min(val, val_max) * width) & 0xFFFFFFFF) // val_max
    return "*" * n + " " * (width - n) + ("+" if val > val_max else "")


def _c_int(val: int) -> int:
    """An unsigned int count as C's ``%d`` prints it."""
    val &= 0xFFFFFFFF
    return val - (1 << 32) if val >= 1 << 31 else val


def _extent(vals: Sequence[int]) -> tuple[int, int, int]:
    idx_min = idx_max = -1
    val_max = 0
    for i, v in enumerate(vals):
        if v > 0:
            idx_max = i
            if idx_min < 0:
                idx_min = i
        if v > val_max:
            val_max = v
    return idx_min, idx_max, val_max


def format_log2_hist(slots: Sequence[int], val_type: str = "value", *, log2_base: Log2Base,
                     strip_leading_zero: bool = False) -> list[str]:
    """The lines :func:`print_log2_hist` prints (without newlines)."""
    _check_base(log2_base)
    vals = [int(v) for v in slots]
    _, idx_max, val_max = _extent(vals)
    wide = idx_max > 32
    lines: list[str] = []
    if log2_base == "libbpf":
        if idx_max < 0:
            return lines
        lines.append(f"{'':{15 if wide else 5}}{val_type:<{29 if wide else 19}} : count    "
                     "distribution")
        first, stars_fn = 0, _c_stars
    else:
        if idx_max <= 0:
            return lines
        lines.append(f"{'':{15 if wide else 5}}{val_type:<{29 if wide else 19}} : count     "
                     "distribution")
        first, stars_fn = 1, _bcc_stars
    width, stars = (20, STARS_MAX // 2) if wide else (10, STARS_MAX)
    for i in range(first, idx_max + 1):
        val = vals[i]
        if strip_leading_zero:
            if not val:
                continue
            strip_leading_zero = False
        low, high = slot_range(i, log2_base=log2_base)
        shown = _c_int(val) if log2_base == "libbpf" else val
        lines.append(f"{low:{width}d} -> {high:<{width}d} : {shown:<8d} |"
                     f"{stars_fn(val, val_max, stars)}|")
    return lines


def format_linear_hist(slots: Sequence[int], val_type: str = "value", *, step: int = 1,
                       base: int = 0, style: Log2Base = "bcc",
                       strip_leading_zero: bool = False) -> list[str]:
    """The lines :func:`print_linear_hist` prints (without newlines)."""
    _check_base(style)
    vals = [int(v) for v in slots]
    idx_min, idx_max, val_max = _extent(vals)
    if idx_max < 0:
        return []
    lines = [f"     {val_type:<13} : count     distribution"]
    if style == "libbpf":  # trace_helpers.c starts at the first non-zero slot
        for i in range(idx_min, idx_max + 1):
            lines.append(f"        {_c_int(base + i * step):<10d} : {_c_int(vals[i]):<8d} |"
                         f"{_c_stars(vals[i], val_max, STARS_MAX)}|")
        return lines
    for i in range(idx_max + 1):
        if strip_leading_zero:
            if not vals[i]:
                continue
            strip_leading_zero = False
        lines.append(f"        {base + i * step:<10d} : {vals[i]:<8d} |"
                     f"{_bcc_stars(vals[i], val_max, STARS_MAX)}|")
    return lines


def print_log2_hist(slots: Sequence[int], val_type: str = "value", *, log2_base: Log2Base,
                    section: str | None = None, file: TextIO | None = None,
                    strip_leading_zero: bool = False) -> None:
    """Print a log2 histogram as bcc (``log2_base="bcc"``) or libbpf-tools
    (``"libbpf"``) would, for slots in that convention.

    ``section`` is a line printed first after an empty line (bcc's
    ``"\\nBucket ptr = ..."``, libbpf-tools' ``"\\npid = 42 comm"``);
    ``strip_leading_zero`` drops empty slots before the first count (bcc's option).
    Nothing is printed when every slot is zero (as both printers do).
    """
    out = sys.stdout if file is None else file
    lines = format_log2_hist(slots, val_type, log2_base=log2_base,
                             strip_leading_zero=strip_leading_zero)
    if section is not None:
        out.write(f"\n{section}\n")
    out.write("".join(line + "\n" for line in lines))


def print_linear_hist(slots: Sequence[int], val_type: str = "value", *, step: int = 1,
                      base: int = 0, style: Log2Base = "bcc", section: str | None = None,
                      file: TextIO | None = None, strip_leading_zero: bool = False) -> None:
    """Print a linear histogram: slot ``i`` is labelled ``base + i * step``.

    ``style="bcc"`` prints every slot from 0 as bcc does; ``style="libbpf"`` prints
    from the first non-zero slot as libbpf-tools' ``print_linear_hist`` does.
    """
    out = sys.stdout if file is None else file
    lines = format_linear_hist(slots, val_type, step=step, base=base, style=style,
                               strip_leading_zero=strip_leading_zero)
    if section is not None:
        out.write(f"\n{section}\n")
    out.write("".join(line + "\n" for line in lines))


# -- maps ---------------------------------------------------------------------------

Bucket = Hashable


def _count(value: Any) -> int:
    """A slot's count: an int, or a per-CPU list of ints summed."""
    if isinstance(value, list):
        return sum(int(v) for v in value)
    return int(value)


def _slots_of(value: Any, slots_field: str) -> list[int]:
    """The slot array of a histogram value (``struct hist { u32 slots[N]; ... }``),
    summed element-wise over CPUs for per-CPU maps."""
    per_cpu = value if isinstance(value, list) and value and not isinstance(value[0], int) \
        else [value]
    total: list[int] = []
    for v in per_cpu:
        try:
            slots = getattr(v, slots_field)
        except AttributeError:
            raise TypeError(f"histogram value {type(v).__name__} has no field "
                            f"{slots_field!r}; pass slots_field=") from None
        if len(total) < len(slots):
            total.extend([0] * (len(slots) - len(total)))
        for i, c in enumerate(slots):
            total[i] += int(c)
    return total


def _key_parts(key: Any) -> tuple[Any, int]:
    """(section, slot) of a struct key ``{bucket; slot}`` (bcc's convention: the first
    field is the section, the second the slot)."""
    fields = dataclasses.fields(key)
    if len(fields) < 2:
        raise TypeError(f"histogram key {type(key).__name__} needs two fields (section, slot)")
    return getattr(key, fields[0].name), int(getattr(key, fields[1].name))


def histogram_sections(items: Iterable[tuple[Any, Any]], *, slots_field: str = "slots",
                       bucket_fn: Callable[[Any], Bucket] | None = None,
                       sectioned: bool = True) -> dict[Bucket, list[int]]:
    """Slots per section from a map's ``(key, value)`` pairs, for any of the layouts
    BPF programs use:

    * key = slot index, value = count (bcc's ``BPF_HISTOGRAM(dist)``);
    * key = struct ``{section; slot}``, value = count (bcc's keyed histograms);
    * value = a struct with a slot array ``slots_field`` (libbpf-tools' ``struct hist``),
      the key is the section (pid, cgroup, disk...).

    Per-CPU values are summed.  ``bucket_fn`` maps each section to the one it counts
    in (bcc's ``bucket_fn``); with ``sectioned=False`` everything goes to section
    ``None``.  Sections keep map order.
    """
    out: dict[Bucket, list[int]] = {}

    def add(section: Any, slot: int, count: int) -> None:
        if not sectioned:
            section = None
        elif bucket_fn is not None:
            section = bucket_fn(section)
        slots = out.setdefault(section, [])
        if slot >= len(slots):
            slots.extend([0] * (slot + 1 - len(slots)))
        slots[slot] += count

    for key, value in items:
        if isinstance(value, int) or (isinstance(value, list) and value
                                      and isinstance(value[0], int)):
            if isinstance(key, int):
                add(None, key, _count(value))
            else:
                section, slot = _key_parts(key)
                add(section, slot, _count(value))
        else:
            for slot, count in enumerate(_slots_of(value, slots_field)):
                add(key, slot, count)
    return out


def _print_sections(items: Iterable[tuple[Any, Any]], fmt: Callable[[list[int]], list[str]],
                    section_header: str | None, section_print_fn: Callable[[Any], str] | None,
                    bucket_fn: Callable[[Any], Bucket] | None,
                    bucket_sort_fn: Callable[[list[Any]], list[Any]] | None,
                    slots_field: str, file: TextIO | None) -> None:
    out = sys.stdout if file is None else file
    sections = histogram_sections(items, slots_field=slots_field, bucket_fn=bucket_fn,
                                  sectioned=section_header is not None)
    order = list(sections)
    if bucket_sort_fn is not None:
        order = bucket_sort_fn(order)
    for bucket in order:
        if section_header is not None:
            shown = section_print_fn(bucket) if section_print_fn else repr(bucket)
            out.write(f"\n{section_header} = {shown}\n")
        out.write("".join(line + "\n" for line in fmt(sections[bucket])))


class _HasItems(Protocol):
    def items(self) -> Iterator[tuple[Any, Any]]: ...


class HistogramMethods:
    """Histogram printing for typed maps (a mixin of the runtime's map classes).

    Works on any map whose ``items()`` gives one of the layouts
    :func:`histogram_sections` reads.
    """

    def log2_hist(self: _HasItems, *, slots_field: str = "slots",
                  bucket_fn: Callable[[Any], Bucket] | None = None,
                  sectioned: bool = False) -> dict[Bucket, list[int]]:
        """The map's histogram(s) as data: section -> slot counts (per-CPU summed).

        Unsectioned (the default) the one histogram is under key ``None``.
        """
        return histogram_sections(self.items(), slots_field=slots_field, bucket_fn=bucket_fn,
                                  sectioned=sectioned)

    def print_log2_hist(self: _HasItems, val_type: str = "value", *, log2_base: Log2Base,
                        section_header: str | None = None,
                        section_print_fn: Callable[[Any], str] | None = None,
                        bucket_fn: Callable[[Any], Bucket] | None = None,
                        bucket_sort_fn: Callable[[list[Any]], list[Any]] | None = None,
                        strip_leading_zero: bool = False, slots_field: str = "slots",
                        file: TextIO | None = None) -> None:
        """Print the map as log2 histogram(s), as bcc's ``table.print_log2_hist``.

        Without ``section_header`` every entry is summed into one histogram; with
        it, one histogram per section follows a ``"\\n<section_header> = <section>"``
        line (``section_print_fn`` formats the section, default ``repr``).
        """
        _check_base(log2_base)
        _print_sections(
            self.items(),
            lambda s: format_log2_hist(s, val_type, log2_base=log2_base,
                                       strip_leading_zero=strip_leading_zero),
            section_header, section_print_fn, bucket_fn, bucket_sort_fn, slots_field, file)

    def print_linear_hist(self: _HasItems, val_type: str = "value", *, step: int = 1, base: int = 0,
                          style: Log2Base = "bcc", section_header: str | None = None,
                          section_print_fn: Callable[[Any], str] | None = None,
                          bucket_fn: Callable[[Any], Bucket] | None = None,
                          bucket_sort_fn: Callable[[list[Any]], list[Any]] | None = None,
                          strip_leading_zero: bool = False, slots_field: str = "slots",
                          file: TextIO | None = None) -> None:
        """Print the map as linear histogram(s); sections as :meth:`print_log2_hist`."""
        _print_sections(
            self.items(),
            lambda s: format_linear_hist(s, val_type, step=step, base=base, style=style,
                                         strip_leading_zero=strip_leading_zero),
            section_header, section_print_fn, bucket_fn, bucket_sort_fn, slots_field, file)


__all__ = ["HistogramMethods", "Log2Base", "format_linear_hist", "format_log2_hist",
           "histogram_sections", "print_linear_hist", "print_log2_hist", "slot_range"]
