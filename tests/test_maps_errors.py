"""Map misuse is one clear sentence: which map, which argument, what it must be, what came."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from btfgen.runtime import MapArgumentError
from btfgen.runtime._libbpf import ffi
from btfgen.runtime.map_types import CLASS_NAMES, NAMES, class_name
from btfgen.runtime.maps import map_kind
from tests.helpers.maps_zoo import build, loaded


@pytest.fixture(scope="module")
def mod() -> ModuleType:
    return build()


@pytest.fixture
def skel() -> Iterator[Any]:
    with loaded(attach=False) as s:
        yield s


@pytest.mark.live
@pytest.mark.parametrize("call, message", [
    (lambda m: m.arr.update("3", 1),
     "map arr: key must be int (u32), got str '3' (required argument is not an integer)"),
    (lambda m: m.arr.update(1, -1),
     "map arr: value must be int (u64), got int -1 (argument out of range)"),
    (lambda m: m.arr.lookup(2**40),
     "map arr: key must be int (u32), got int 1099511627776 ('I' format requires 0 <= number"
     " <= 4294967295)"),
    (lambda m: m.counts.update(7, 1),
     "map counts: key must be Key, got int 7 (expected Key, got int)"),
    (lambda m: m.counts.lookup(m.inner_a),
     "map counts: key must be Key, got ArrayMap <ArrayMap inner_a> (expected Key, got "
     "ArrayMap)"),
    (lambda m: m.fifo.push(b"x"),
     "map fifo: value must be int (u64), got bytes b'x' (required argument is not an "
     "integer)"),
    (lambda m: m.pcpu.update(0, "a"),
     "map pcpu: value must be int (u32), got str 'a' (required argument is not an integer)"),
    (lambda m: m.pcpu.update(0, [1, 2, "x"][: 3]),
     "map pcpu: value must be"),
    (lambda m: m.stacks.update(1, [1] * 200),
     "map stacks: value must be a list of at most 127 addresses (int), got list"),
    (lambda m: m.arr.update_batch([(0, 1), ("1", 2)]),
     "map arr: key must be int (u32), got str '1'"),
])
def test_wrong_key_or_value_names_map_argument_and_type(skel: Any, call: Any,
                                                        message: str) -> None:
    with pytest.raises(MapArgumentError) as e:
        call(skel.maps)
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)


@pytest.mark.live
@pytest.mark.parametrize("call, message", [
    (lambda m: m.arr.update(5, 1), "map arr: update (index out of range: the array has 5 "
     "elements): Argument list too long"),
    (lambda m: m.arr.update(1, 1, 1), "map arr: update (array elements always exist: flags "
     "cannot be NOEXIST): File exists"),
    (lambda m: m.counts.update(m.counts.key_codec.cls(pid=9), 1, 2),
     "map counts: update (no such key and flags is EXIST): No such file or directory"),
    (lambda m: [m.fifo.push(i) for i in range(65)], "map fifo: push (the map is full: "
     "max_entries 64; push(value, overwrite=True) makes room): Argument list too long"),
    (lambda m: [m.counts.update(m.counts.key_codec.cls(pid=i), i) for i in range(65)],
     "map counts: update (the map is full: max_entries 64): Argument list too long"),
])
def test_kernel_refusals_say_what_they_mean(skel: Any, call: Any, message: str) -> None:
    with pytest.raises(OSError) as e:
        call(skel.maps)
    assert str(e.value) == message


@pytest.mark.live
def test_a_record_of_another_class_is_refused_before_the_kernel(mod: ModuleType,
                                                                skel: Any) -> None:
    class Lookalike:  # same size and to_bytes(): used to pass silently
        SIZE = mod.Key.SIZE

        def to_bytes(self) -> bytes:
            return bytes(self.SIZE)

    with pytest.raises(MapArgumentError, match="map counts: key must be Key, got Lookalike"):
        skel.maps.counts[Lookalike()] = 1


def test_unknown_map_types_are_mapbase_in_runtime_and_generator() -> None:
    from btfgen.elf import maps as map_defs

    assert map_kind(999) == class_name(999) == "MapBase"
    assert map_kind(19) == "MapBase"  # CGROUP_STORAGE: no class of its own
    assert map_kind(1) == "HashMap" and map_kind(22) == "QueueMap"
    assert map_defs.MAP_TYPE_NAMES is NAMES and map_defs.map_type_name(999) == "UNKNOWN_999"
    import btfgen.runtime as rt

    assert set(CLASS_NAMES.values()) <= set(rt.__all__)
    assert all(getattr(rt, name) for name in CLASS_NAMES.values())


def test_generator_gives_unknown_types_mapbase(bpf_compile: Any, tmp_path: Any) -> None:
    from tests.helpers.gen import generate

    src = r"""
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, 250); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); }
    future SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_CGROUP_STORAGE); __type(key, struct bpf_cgroup_storage_key);
         __type(value, __u64); } cg SEC(".maps");
char LICENSE[] SEC("license") = "GPL";
"""
    obj = bpf_compile(src, "future")
    text_path = tmp_path / "future_skel.py"
    generate(obj, text_path)
    text = text_path.read_text()
    assert 'self.future: _rt.MapBase = _rt.MapBase(skel._map("future"))' in text
    assert 'self.cg: _rt.MapBase = _rt.MapBase(skel._map("cg"))' in text


def test_map_cdefs_combine_with_the_runtime_ones() -> None:
    import btfgen.runtime.maps  # noqa: F401 - its cdef block

    real = ffi.real()
    assert real.typeof("int(*)(struct bpf_map *, int)") is not None
    from btfgen.runtime._libbpf import lib

    assert callable(lib().bpf_map__reuse_fd) and callable(lib().bpf_obj_get_info_by_fd)
