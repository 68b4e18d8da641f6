"""Typed BPF maps: lookup/update/delete, iteration, batch operations, per-CPU values.

Keys and values go through codecs (see :mod:`btfgen.runtime.protocols`), so a
map whose key is ``__u32`` and value ``struct event`` reads as
``HashMap[int, Event]``.  Per-CPU maps give and take one value per possible CPU.
"""

from __future__ import annotations

import errno
import struct
import weakref
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.errors import MapKeyError, RuntimeBpfError, error_class
from btfgen.runtime.hist import HistogramMethods
from btfgen.runtime.map_pinning import Pinnable
from btfgen.runtime.map_types import ARRAY, PERCPU_ARRAY, class_name
from btfgen.runtime.native import check_int
from btfgen.runtime.protocols import Codec
from btfgen.runtime.system import possible_cpus

K = TypeVar("K")
V = TypeVar("V")
VT = TypeVar("VT")

#: update() flags.
ANY, NOEXIST, EXIST = 0, 1, 2
BPF_F_LOCK = 4

#: What a codec raises on a value it cannot encode.
ENCODE_ERRORS = (struct.error, TypeError, ValueError, AttributeError, OverflowError)

# Object ids (all in libbpf 1.1).
ffi.cdef("int bpf_obj_get_info_by_fd(int bpf_fd, void *info, uint32_t *info_len);")


class MapArgumentError(RuntimeBpfError, TypeError, ValueError):
    """A key or value a map's codec cannot encode (wrong type, size or range)."""


def argument_error(map_name: str, what: str, codec: Codec[Any], given: object,
                   why: BaseException | str) -> MapArgumentError:
    """``map NAME: key must be int (u32), got str 'x' (reason)``."""
    shown = repr(given)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return MapArgumentError(f"map {map_name}: {what} must be {codec.describe()}, got "
                            f"{type(given).__name__} {shown} ({why})")


def encode_arg(map_name: str, what: str, codec: Codec[Any], given: object) -> bytes:
    """``codec.encode(given)``, or :class:`MapArgumentError` naming the map, the
    argument (``what``: key, value), what it must be and what was given."""
    try:
        raw = codec.encode(given)
    except ENCODE_ERRORS as e:
        raise argument_error(map_name, what, codec, given, e) from None
    if len(raw) != codec.size:
        raise argument_error(map_name, what, codec, given,
                             f"it encodes to {len(raw)} bytes, not {codec.size}")
    return raw


def object_id(fd: int, what: str) -> int:
    """The kernel id of the BPF program or map behind ``fd`` (bpf_obj_get_info_by_fd)."""
    info = ffi.new("uint32_t[2]")  # bpf_prog_info/bpf_map_info start {type, id}
    size = ffi.new("uint32_t *", 8)
    rc = int(lib().bpf_obj_get_info_by_fd(fd, info, size))
    if rc < 0:
        raise error_class(rc)(f"{what}: get info", rc)
    return int(info[1])


#: The typed wrapper last made for each map handle (what map-in-map lookups return).
_WRAPPERS: weakref.WeakKeyDictionary[MapPtr, weakref.ref[MapBase]] = weakref.WeakKeyDictionary()


def wrapper_of(handle: MapPtr) -> MapBase:
    """The typed map object made for ``handle`` (``skel.maps.x``), else a plain MapBase."""
    ref = _WRAPPERS.get(handle)
    found = ref() if ref is not None else None
    return found if found is not None else MapBase(handle)


class MapBase(Pinnable):
    """What every map has: name, type, sizes, fd, id, pinning."""

    def __init__(self, handle: MapPtr) -> None:
        self._h = handle
        self.name = handle.name
        ref = _WRAPPERS.get(handle)
        if ref is None or ref() is None:
            _WRAPPERS[handle] = weakref.ref(self)

    @property
    def fd(self) -> int:
        """The map's fd (valid after load)."""
        return self._h.fd

    @property
    def handle(self) -> Any:
        """The ``struct bpf_map *`` in :mod:`btfgen.runtime.libbpf`'s ffi (the way down)."""
        return self._h.handle

    @property
    def map_type(self) -> int:
        """BPF_MAP_TYPE_* number."""
        return self._h.map_type

    @property
    def max_entries(self) -> int:
        """max_entries (settable before load, e.g. to size a ring buffer)."""
        return self._h.max_entries

    @max_entries.setter
    def max_entries(self, n: int) -> None:
        self._h.max_entries = n

    @property
    def key_size(self) -> int:
        """sizeof the key."""
        return self._h.key_size

    @property
    def value_size(self) -> int:
        """sizeof the value (per CPU for per-CPU maps)."""
        return self._h.value_size

    @property
    def id(self) -> int:
        """The kernel's id of the map (after load)."""
        self._loaded()
        return object_id(self.fd, f"map {self.name}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class KeyedMap(MapBase, HistogramMethods, Generic[K, VT]):
    """Element operations shared by every map with keys; ``VT`` is what lookup gives."""

    def __init__(self, handle: MapPtr, key: Codec[K], value: Codec[Any]) -> None:
        super().__init__(handle)
        self.key_codec = key
        self.value_codec = value
        if key.size != handle.key_size:
            raise TypeError(f"map {self.name}: key codec is {key.size} bytes, map key is "
                            f"{handle.key_size}")
        self._decode_key = key.decode_key
        self._vbuf_size = self._value_buffer_size()

    # -- value encoding (per-CPU maps override) --
    def _value_buffer_size(self) -> int:
        return self._h.value_size

    def _decode_value(self, buf: Any) -> VT:
        return self.value_codec.decode(buf)  # type: ignore[no-any-return]

    def _encode_value(self, value: VT) -> bytes:
        return self._encode(self.value_codec, "value", value)

    def _encode(self, codec: Codec[Any], what: str, given: object) -> bytes:
        return encode_arg(self.name, what, codec, given)

    # -- element operations --
    def _key(self, key: K) -> Any:
        return ffi.from_buffer(self._encode(self.key_codec, "key", key))

    def _lookup_raw(self, key: K) -> Any:
        """The value's bytes (a cffi buffer) for ``key``, or None when absent."""
        self._loaded()
        kb = self._key(key)
        vb = ffi.new("char[]", self._vbuf_size)
        rc = lib().bpf_map__lookup_elem(self._h.ptr, kb, len(kb), vb, self._vbuf_size, 0)
        if rc == -errno.ENOENT:
            return None
        if rc < 0:
            raise error_class(rc)(f"map {self.name}: lookup", rc)
        return ffi.buffer(vb)

    def lookup(self, key: K, default: VT | None = None) -> VT | None:
        """The value for ``key`` or ``default`` when absent."""
        raw = self._lookup_raw(key)
        return default if raw is None else self._decode_value(raw)

    def __getitem__(self, key: K) -> VT:
        value = self.lookup(key)
        if value is None:
            raise MapKeyError(key)
        return value

    def update(self, key: K, value: VT, flags: int = ANY) -> None:
        """Set ``key`` to ``value``; flags ANY, NOEXIST (fails if present), EXIST."""
        self._loaded()
        kb = self._key(key)
        vb = ffi.from_buffer(self._encode_value(value))
        rc = lib().bpf_map__update_elem(self._h.ptr, kb, len(kb), vb, len(vb), flags)
        if rc < 0:
            raise error_class(rc)(f"map {self.name}: update{self._update_hint(rc, flags)}", rc)

    def _update_hint(self, rc: int, flags: int) -> str:
        """What a failed update's errno means for this map, in parentheses."""
        if rc == -errno.E2BIG:
            return f" (the map is full: max_entries {self._h.max_entries})"
        if rc == -errno.EEXIST and flags & NOEXIST:
            return " (the key exists and flags is NOEXIST)"
        if rc == -errno.ENOENT and flags & EXIST:
            return " (no such key and flags is EXIST)"
        return ""

    def __setitem__(self, key: K, value: VT) -> None:
        self.update(key, value)

    def delete(self, key: K) -> None:
        """Remove ``key`` (:class:`MapKeyError` when absent)."""
        self._loaded()
        kb = self._key(key)
        rc = lib().bpf_map__delete_elem(self._h.ptr, kb, len(kb), 0)
        if rc == -errno.ENOENT:
            raise MapKeyError(key)
        if rc < 0:
            raise error_class(rc)(f"map {self.name}: delete", rc)

    def __delitem__(self, key: K) -> None:
        self.delete(key)

    def __contains__(self, key: object) -> bool:
        return self._lookup_raw(key) is not None  # type: ignore[arg-type]

    def keys(self) -> Iterator[K]:
        """Iterate over the keys (get_next_key order)."""
        self._loaded()
        size = self._h.key_size
        cur = ffi.NULL
        nxt = ffi.new("char[]", size)
        while True:
            rc = lib().bpf_map__get_next_key(self._h.ptr, cur, nxt, size)
            if rc == -errno.ENOENT:
                return
            if rc < 0:
                raise error_class(rc)(f"map {self.name}: get_next_key", rc)
            raw = bytes(ffi.buffer(nxt))
            yield self._decode_key(raw)
            cur = ffi.from_buffer(raw)

    def __iter__(self) -> Iterator[K]:
        return self.keys()

    def items(self) -> Iterator[tuple[K, VT]]:
        """Iterate over (key, value) pairs; keys removed meanwhile are skipped."""
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def values(self) -> Iterator[VT]:
        """Iterate over the values."""
        for _, v in self.items():
            yield v

    def clear(self) -> None:
        """Delete every key (for arrays: not possible, raises)."""
        for k in list(self.keys()):
            try:
                self.delete(k)
            except MapKeyError:
                pass

    # -- batch operations (kernel >= 5.6; BpfError EINVAL/ENOTSUPP otherwise) --
    def _batch_opts(self, elem_flags: int = 0) -> Any:
        opts = ffi.new("struct bpf_map_batch_opts *")
        opts.sz = ffi.sizeof("struct bpf_map_batch_opts")
        opts.elem_flags = elem_flags
        return opts

    def _lookup_batch(self, fn: str, chunk: int) -> list[tuple[K, VT]]:
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ValueError(f"map {self.name}: {fn.removeprefix('bpf_map_')} chunk must be a "
                             f"positive number of elements, got {chunk!r}")
        self._loaded()
        chunk = min(chunk, max(1, self._h.max_entries))
        ks, vs = self._h.key_size, self._vbuf_size
        keys = ffi.new("char[]", ks * chunk)
        vals = ffi.new("char[]", vs * chunk)
        token_in = ffi.new("char[]", max(ks, 8))
        token_out = ffi.new("char[]", max(ks, 8))
        count = ffi.new("uint32_t *")
        out: list[tuple[K, VT]] = []
        first = True
        opts = self._batch_opts()
        while True:
            count[0] = chunk
            rc = getattr(lib(), fn)(self._h.fd, ffi.NULL if first else token_in, token_out,
                                    keys, vals, count, opts)
            err = ffi.errno
            n = int(count[0])
            if rc < 0 and err != errno.ENOENT:
                raise error_class(err)(f"map {self.name}: {fn}", err)
            kbuf, vbuf = ffi.buffer(keys), ffi.buffer(vals)
            for i in range(n if rc == 0 or err == errno.ENOENT else 0):
                out.append((self._decode_key(kbuf, i * ks),
                            self._decode_value(memoryview(vbuf)[i * vs:(i + 1) * vs])))
            if rc < 0:  # ENOENT: that was the last batch
                return out
            ffi.memmove(token_in, token_out, max(ks, 8))
            first = False

    def lookup_batch(self, chunk: int = 256) -> list[tuple[K, VT]]:
        """Every (key, value), read with BPF_MAP_LOOKUP_BATCH ``chunk`` at a time."""
        return self._lookup_batch("bpf_map_lookup_batch", chunk)

    def lookup_and_delete_batch(self, chunk: int = 256) -> list[tuple[K, VT]]:
        """Every (key, value), removing them (BPF_MAP_LOOKUP_AND_DELETE_BATCH)."""
        return self._lookup_batch("bpf_map_lookup_and_delete_batch", chunk)

    def update_batch(self, items: Iterable[tuple[K, VT]], flags: int = ANY) -> None:
        """Set many keys at once (BPF_MAP_UPDATE_BATCH); ``flags`` apply per element."""
        self._loaded()
        pairs = list(items)
        if not pairs:
            return
        keys = ffi.from_buffer(b"".join(self._encode(self.key_codec, "key", k) for k, _ in pairs))
        vals = ffi.from_buffer(b"".join(self._encode_value(v) for _, v in pairs))
        count = ffi.new("uint32_t *", len(pairs))
        rc = lib().bpf_map_update_batch(self._h.fd, keys, vals, count, self._batch_opts(flags))
        if rc < 0:
            err = ffi.errno
            raise error_class(err)(
                f"map {self.name}: update_batch (after {int(count[0])} elements)", err)

    def delete_batch(self, keys: Iterable[K]) -> None:
        """Delete many keys at once (BPF_MAP_DELETE_BATCH); missing keys raise."""
        self._loaded()
        ks = list(keys)
        if not ks:
            return
        buf = ffi.from_buffer(b"".join(self._encode(self.key_codec, "key", k) for k in ks))
        count = ffi.new("uint32_t *", len(ks))
        rc = lib().bpf_map_delete_batch(self._h.fd, buf, count, self._batch_opts())
        if rc < 0:
            err = ffi.errno
            raise error_class(err)(
                f"map {self.name}: delete_batch (after {int(count[0])} elements)", err)


class HashMap(KeyedMap[K, V]):
    """A hash-like map (HASH, LRU_HASH, LPM_TRIE, ...): keys come and go."""


class ArrayMap(KeyedMap[K, V]):
    """An array map: every index in range(max_entries) exists; ``len`` is max_entries."""

    def __len__(self) -> int:
        return self._h.max_entries

    def _update_hint(self, rc: int, flags: int) -> str:
        if rc == -errno.E2BIG:
            return f" (index out of range: the array has {self._h.max_entries} elements)"
        if rc == -errno.EEXIST and flags & NOEXIST:
            return " (array elements always exist: flags cannot be NOEXIST)"
        return super()._update_hint(rc, flags)

    def clear(self) -> None:
        """ARRAY and PERCPU_ARRAY: set every element to zero (their elements cannot be
        deleted); array-like maps of fds (DEVMAP, SOCKMAP, ...): delete every element."""
        self._loaded()
        if self._h.map_type not in (ARRAY, PERCPU_ARRAY):
            return super().clear()
        n, vs, step = self._h.max_entries, self._vbuf_size, 4096
        zeros = ffi.new("char[]", vs * min(n, step))
        for start in range(0, n, step):
            count = min(step, n - start)
            keys = ffi.from_buffer(struct.pack(f"<{count}I", *range(start, start + count)))
            cnt = ffi.new("uint32_t *", count)
            if lib().bpf_map_update_batch(self._h.fd, keys, zeros, cnt, self._batch_opts()) < 0:
                err = ffi.errno
                if err not in (errno.EINVAL, errno.ENOTSUP, 524):  # 524: ENOTSUPP (old kernels)
                    raise error_class(err)(f"map {self.name}: clear", err)
                for i in range(start, start + count):  # no batch ops: one by one
                    k = ffi.new("uint32_t *", i)
                    check_int(f"map {self.name}: clear", lambda: lib().bpf_map__update_elem(
                        self._h.ptr, k, 4, zeros, vs, ANY))  # noqa: B023 - called at once


class _PerCpu(KeyedMap[K, list[V]]):
    """Values are one per possible CPU, each padded to 8 bytes in the kernel's buffer."""

    def _value_buffer_size(self) -> int:
        self.ncpus = possible_cpus()
        self.stride = (self._h.value_size + 7) & ~7
        return self.stride * self.ncpus

    def _decode_value(self, buf: Any) -> list[V]:
        dec, stride = self.value_codec.decode, self.stride
        return [dec(buf, i * stride) for i in range(self.ncpus)]

    def _encode_value(self, value: list[V] | V) -> bytes:
        """A list of one value per possible CPU, or one value for every CPU.

        (For list-typed values, a list of ``ncpus`` lists counts as per-CPU.)
        """
        pad = b"\0" * (self.stride - self._h.value_size)
        codec = self.value_codec
        if isinstance(value, list):
            if len(value) == self.ncpus:
                try:
                    return b"".join(self._encode(codec, "value", v) + pad for v in value)
                except MapArgumentError:
                    pass  # maybe one list-typed value for every CPU
            try:
                return (self._encode(codec, "value", value) + pad) * self.ncpus
            except MapArgumentError:
                raise MapArgumentError(
                    f"map {self.name}: value must be {self.ncpus} per-CPU values or one value "
                    f"for every CPU, each {codec.describe()}; got a list of {len(value)}"
                ) from None
        return (self._encode(codec, "value", value) + pad) * self.ncpus


class PerCpuHashMap(_PerCpu[K, V], HashMap[K, list[V]]):
    """PERCPU_HASH / LRU_PERCPU_HASH: lookup gives a list, one value per possible CPU."""


class PerCpuArrayMap(_PerCpu[K, V], ArrayMap[K, list[V]]):
    """PERCPU_ARRAY: lookup gives a list, one value per possible CPU."""


def map_kind(map_type: int) -> str:
    """The runtime class name used for BPF_MAP_TYPE_* ``map_type`` (``MapBase`` for
    types without a class of their own); see :mod:`btfgen.runtime.map_types`."""
    return class_name(map_type)


__all__ = ["ANY", "NOEXIST", "EXIST", "BPF_F_LOCK", "MapBase", "KeyedMap", "HashMap", "ArrayMap",
           "PerCpuHashMap", "PerCpuArrayMap", "MapArgumentError", "encode_arg", "map_kind",
           "check_int"]
