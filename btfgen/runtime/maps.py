"""Typed BPF maps: lookup/update/delete, iteration, batch operations, per-CPU values.

Keys and values go through codecs (see :mod:`btfgen.runtime.protocols`), so a
map whose key is ``__u32`` and value ``struct event`` reads as
``HashMap[int, Event]``.  Per-CPU maps give and take one value per possible CPU.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr, check_int
from btfgen.runtime.errors import BpfError, MapKeyError, error_class
from btfgen.runtime.map_types import (
    LRU_PERCPU_HASH,
    PERCPU_ARRAY,
    PERCPU_HASH,
    PERF_EVENT_ARRAY,
    RINGBUF,
)
from btfgen.runtime.protocols import Codec
from btfgen.runtime.system import possible_cpus

K = TypeVar("K")
V = TypeVar("V")
VT = TypeVar("VT")

#: update() flags.
ANY, NOEXIST, EXIST = 0, 1, 2
BPF_F_LOCK = 4

ARRAY_LIKE = frozenset({2, 3, 8, 12, 14, 15, 16, 17})


class MapBase:
    """What every map has: name, type, sizes, fd."""

    def __init__(self, handle: MapPtr) -> None:
        self._h = handle
        self.name = handle.name

    @property
    def fd(self) -> int:
        """The map's fd (valid after load)."""
        return self._h.fd

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

    def _loaded(self) -> None:
        self._h.owner.check_loaded()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class KeyedMap(MapBase, Generic[K, VT]):
    """Element operations shared by every map with keys; ``VT`` is what lookup gives."""

    def __init__(self, handle: MapPtr, key: Codec[K], value: Codec[Any]) -> None:
        super().__init__(handle)
        self.key_codec = key
        self.value_codec = value
        if key.size != handle.key_size:
            raise TypeError(f"map {self.name}: key codec is {key.size} bytes, map key is "
                            f"{handle.key_size}")
        self._vbuf_size = self._value_buffer_size()

    # -- value encoding (per-CPU maps override) --
    def _value_buffer_size(self) -> int:
        return self._h.value_size

    def _decode_value(self, buf: Any) -> VT:
        return self.value_codec.decode(buf)  # type: ignore[no-any-return]

    def _encode_value(self, value: VT) -> bytes:
        return self.value_codec.encode(value)

    # -- element operations --
    def _key(self, key: K) -> Any:
        return ffi.from_buffer(self.key_codec.encode(key))

    def lookup(self, key: K, default: VT | None = None) -> VT | None:
        """The value for ``key`` or ``default`` when absent."""
        self._loaded()
        kb = self._key(key)
        vb = ffi.new("char[]", self._vbuf_size)
        rc = lib().bpf_map__lookup_elem(self._h.ptr, kb, len(kb), vb, self._vbuf_size, 0)
        if rc == -errno.ENOENT:
            return default
        if rc < 0:
            raise error_class(rc)(f"map {self.name}: lookup", rc)
        return self._decode_value(ffi.buffer(vb))

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
            raise error_class(rc)(f"map {self.name}: update", rc)

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
        return self.lookup(key) is not None  # type: ignore[arg-type]

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
            yield self.key_codec.decode(raw)
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
        self._loaded()
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
                out.append((self.key_codec.decode(kbuf, i * ks),
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
        keys = ffi.from_buffer(b"".join(self.key_codec.encode(k) for k, _ in pairs))
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
        buf = ffi.from_buffer(b"".join(self.key_codec.encode(k) for k in ks))
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

    def clear(self) -> None:
        """Arrays cannot delete elements."""
        raise BpfError(f"map {self.name}: array elements cannot be deleted", errno.EINVAL)


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
        enc = self.value_codec.encode
        if isinstance(value, list):
            if len(value) == self.ncpus:
                try:
                    return b"".join(enc(v) + pad for v in value)
                except (TypeError, ValueError, struct.error):
                    pass  # maybe one list-typed value for every CPU
            try:
                return (enc(value) + pad) * self.ncpus
            except (TypeError, ValueError, struct.error):
                raise ValueError(f"map {self.name}: need {self.ncpus} per-CPU values or one "
                                 f"value for every CPU, got a list of {len(value)}") from None
        return (enc(value) + pad) * self.ncpus


class PerCpuHashMap(_PerCpu[K, V], HashMap[K, list[V]]):
    """PERCPU_HASH / LRU_PERCPU_HASH: lookup gives a list, one value per possible CPU."""


class PerCpuArrayMap(_PerCpu[K, V], ArrayMap[K, list[V]]):
    """PERCPU_ARRAY: lookup gives a list, one value per possible CPU."""


def map_kind(map_type: int) -> str:
    """The runtime class name used for BPF_MAP_TYPE_* ``map_type``."""
    if map_type == PERF_EVENT_ARRAY:
        return "PerfEventArray"
    if map_type == RINGBUF:
        return "RingBuf"
    if map_type in (PERCPU_HASH, LRU_PERCPU_HASH):
        return "PerCpuHashMap"
    if map_type == PERCPU_ARRAY:
        return "PerCpuArrayMap"
    if map_type in ARRAY_LIKE:
        return "ArrayMap"
    return "HashMap"


__all__ = ["ANY", "NOEXIST", "EXIST", "BPF_F_LOCK", "MapBase", "KeyedMap", "HashMap", "ArrayMap",
           "PerCpuHashMap", "PerCpuArrayMap", "map_kind", "check_int"]
