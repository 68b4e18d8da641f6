"""The btfgen runtime: libbpf through cffi, used by generated skeletons.

Generated modules subclass :class:`Skeleton` (``ProbeSkel``) and fill in typed
namespaces; by hand the same pieces are usable directly::

    obj = LibbpfObject(open("probe.bpf.o", "rb").read(), "probe")
    rodata = MySection(obj.find_map(".rodata"))   # a GlobalSection subclass
    rodata.target_pid = 42                         # before load
    obj.load(); obj.attach()
    events = PerfEventArray(obj.find_map("events"), RecordCodec(Event))
    pb = events.open_perf_buffer(lambda cpu, ev: print(cpu, ev))
    while True:
        pb.poll(100)

* libbpf (system ``libbpf.so.1``, or ``BTFGEN_LIBBPF``) is called through cffi
  in ABI mode, loaded on first use so importing stays cheap;
* failures raise :class:`BpfError` (an ``OSError``: ``errno``, libbpf's log
  lines in ``.log``, the verifier log in ``.verifier_log``);
* :class:`LibbpfObject` owns links, buffers and mmaps and frees them on
  ``close()``, at garbage collection and at interpreter exit.

The runtime never imports the generator.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from btfgen.runtime.bpfobj import LibbpfObject
    from btfgen.runtime.errors import (
        BpfError,
        BpfPermissionError,
        LibbpfMissingError,
        MapKeyError,
        NotSupportedError,
        RuntimeBpfError,
    )
    from btfgen.runtime.fd_maps import MapOfMaps, ProgArrayMap
    from btfgen.runtime.link import Link
    from btfgen.runtime.local_storage import LocalStorageMap
    from btfgen.runtime.maps import (
        ANY,
        EXIST,
        NOEXIST,
        ArrayMap,
        HashMap,
        KeyedMap,
        MapArgumentError,
        MapBase,
        PerCpuArrayMap,
        PerCpuHashMap,
    )
    from btfgen.runtime.perf import PerfBuffer, PerfEventArray
    from btfgen.runtime.program import Program
    from btfgen.runtime.protocols import Codec, RawCodec, RecordCodec, as_codec
    from btfgen.runtime.queue_maps import BloomFilterMap, QueueMap, StackMap
    from btfgen.runtime.reader import WithPayload
    from btfgen.runtime.ringbuf import RingBuf, RingBuffer
    from btfgen.runtime.sections import GlobalSection, ReadOnlyError, var
    from btfgen.runtime.skeleton import Namespace, Skeleton
    from btfgen.runtime.stack_traces import StackTraceMap
    from btfgen.runtime.system import TracefsError, possible_cpus
    from btfgen.runtime.tracepipe import TraceLine, TracePipe, trace_pipe

# Names load on first use (PEP 562): a generated module's import then pays only for
# what its class bodies touch (Skeleton, Namespace, GlobalSection), not for the
# buffers, maps and batch machinery it binds later.
_WHERE = {
    "LibbpfObject": "bpfobj", "Link": "link", "Program": "program",
    "PerfBuffer": "perf", "PerfEventArray": "perf", "RingBuf": "ringbuf",
    "RingBuffer": "ringbuf", "WithPayload": "reader",
    "BpfError": "errors", "BpfPermissionError": "errors", "LibbpfMissingError": "errors",
    "MapKeyError": "errors", "NotSupportedError": "errors", "RuntimeBpfError": "errors",
    "ANY": "maps", "EXIST": "maps", "NOEXIST": "maps", "ArrayMap": "maps", "HashMap": "maps",
    "KeyedMap": "maps", "MapBase": "maps", "PerCpuArrayMap": "maps", "PerCpuHashMap": "maps",
    "MapArgumentError": "maps", "QueueMap": "queue_maps", "StackMap": "queue_maps",
    "BloomFilterMap": "queue_maps", "StackTraceMap": "stack_traces", "ProgArrayMap": "fd_maps",
    "MapOfMaps": "fd_maps", "LocalStorageMap": "local_storage",
    "Codec": "protocols", "RawCodec": "protocols", "RecordCodec": "protocols",
    "as_codec": "protocols",
    "GlobalSection": "sections", "ReadOnlyError": "sections", "var": "sections",
    "Namespace": "skeleton", "Skeleton": "skeleton",
    "TracefsError": "system", "possible_cpus": "system",
    "trace_pipe": "tracepipe", "TracePipe": "tracepipe", "TraceLine": "tracepipe",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


__all__ = [
    "BloomFilterMap", "LocalStorageMap", "MapArgumentError", "MapOfMaps", "ProgArrayMap",
    "QueueMap", "StackMap", "StackTraceMap",
    "ANY", "EXIST", "NOEXIST", "ArrayMap", "BpfError", "BpfPermissionError", "Codec",
    "GlobalSection", "HashMap", "KeyedMap", "LibbpfMissingError", "LibbpfObject", "Link",
    "MapBase", "MapKeyError", "Namespace", "NotSupportedError", "PerCpuArrayMap",
    "PerCpuHashMap", "PerfBuffer", "PerfEventArray", "Program", "RawCodec", "ReadOnlyError",
    "RecordCodec", "RingBuf", "RingBuffer", "RuntimeBpfError", "Skeleton", "TraceLine",
    "TracePipe", "TracefsError", "WithPayload", "as_codec", "possible_cpus", "trace_pipe", "var",
]
