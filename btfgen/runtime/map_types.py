"""BPF_MAP_TYPE_* numbers (uapi/linux/bpf.h) and the runtime class of each.

The one table of map-type numbers: the runtime uses it to pick a class, the
generator imports it (the runtime never imports the generator) to name map
types and to choose the class a skeleton attribute gets.
"""

from __future__ import annotations

#: BPF_MAP_TYPE_* names in enum order.
NAMES = (
    "UNSPEC", "HASH", "ARRAY", "PROG_ARRAY", "PERF_EVENT_ARRAY", "PERCPU_HASH",
    "PERCPU_ARRAY", "STACK_TRACE", "CGROUP_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH",
    "LPM_TRIE", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP", "SOCKMAP", "CPUMAP", "XSKMAP",
    "SOCKHASH", "CGROUP_STORAGE", "REUSEPORT_SOCKARRAY", "PERCPU_CGROUP_STORAGE", "QUEUE",
    "STACK", "SK_STORAGE", "DEVMAP_HASH", "STRUCT_OPS", "RINGBUF", "INODE_STORAGE",
    "TASK_STORAGE", "BLOOM_FILTER", "USER_RINGBUF", "CGRP_STORAGE", "ARENA",
)

(UNSPEC, HASH, ARRAY, PROG_ARRAY, PERF_EVENT_ARRAY, PERCPU_HASH, PERCPU_ARRAY, STACK_TRACE,
 CGROUP_ARRAY, LRU_HASH, LRU_PERCPU_HASH, LPM_TRIE, ARRAY_OF_MAPS, HASH_OF_MAPS, DEVMAP,
 SOCKMAP, CPUMAP, XSKMAP, SOCKHASH, CGROUP_STORAGE, REUSEPORT_SOCKARRAY, PERCPU_CGROUP_STORAGE,
 QUEUE, STACK, SK_STORAGE, DEVMAP_HASH, STRUCT_OPS, RINGBUF, INODE_STORAGE, TASK_STORAGE,
 BLOOM_FILTER, USER_RINGBUF, CGRP_STORAGE, ARENA) = range(len(NAMES))

#: The runtime class (a name in ``btfgen.runtime``) of each map type; any type
#: missing here (and any number this table does not know) is a plain ``MapBase``.
CLASS_NAMES: dict[int, str] = {
    HASH: "HashMap", LRU_HASH: "HashMap", LPM_TRIE: "HashMap", SOCKHASH: "HashMap",
    DEVMAP_HASH: "HashMap",
    ARRAY: "ArrayMap", CGROUP_ARRAY: "ArrayMap", DEVMAP: "ArrayMap", SOCKMAP: "ArrayMap",
    CPUMAP: "ArrayMap", XSKMAP: "ArrayMap",
    PERCPU_HASH: "PerCpuHashMap", LRU_PERCPU_HASH: "PerCpuHashMap",
    PERCPU_ARRAY: "PerCpuArrayMap",
    PERF_EVENT_ARRAY: "PerfEventArray", RINGBUF: "RingBuf",
    QUEUE: "QueueMap", STACK: "StackMap", BLOOM_FILTER: "BloomFilterMap",
    STACK_TRACE: "StackTraceMap", PROG_ARRAY: "ProgArrayMap",
    ARRAY_OF_MAPS: "MapOfMaps", HASH_OF_MAPS: "MapOfMaps",
    SK_STORAGE: "LocalStorageMap", TASK_STORAGE: "LocalStorageMap",
    INODE_STORAGE: "LocalStorageMap", CGRP_STORAGE: "LocalStorageMap",
}

#: How each class is constructed: ``kv`` (handle, key codec, value codec), ``v``
#: (handle, value codec), ``k`` (handle, key codec), ``h`` (handle only);
#: perf/ring buffers take (handle[, record codec]).
SIGNATURES: dict[str, str] = {
    "HashMap": "kv", "ArrayMap": "kv", "PerCpuHashMap": "kv", "PerCpuArrayMap": "kv",
    "LocalStorageMap": "v", "QueueMap": "v", "StackMap": "v", "BloomFilterMap": "v",
    "StackTraceMap": "h", "ProgArrayMap": "h", "MapOfMaps": "k", "MapBase": "h",
}


def type_name(map_type: int) -> str:
    """``HASH`` for 1 ...; ``UNKNOWN_<n>`` for a number this table does not know."""
    if 0 <= map_type < len(NAMES):
        return NAMES[map_type]
    return f"UNKNOWN_{map_type}"


def class_name(map_type: int) -> str:
    """The runtime class name for BPF_MAP_TYPE_* ``map_type`` (``MapBase`` if unknown)."""
    return CLASS_NAMES.get(map_type, "MapBase")
