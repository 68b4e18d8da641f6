"""The btfgen runtime: libbpf through cffi, used by generated skeletons.

Import cost matters (every generated module imports this), so libbpf itself is
loaded lazily, on the first open.  The runtime never imports the generator.
"""

from btfgen.runtime.bpfobj import LibbpfObject, Link, Program
from btfgen.runtime.buffers import PerfBuffer, PerfEventArray, RingBuf, RingBuffer, WithPayload
from btfgen.runtime.errors import (
    BpfError,
    BpfPermissionError,
    LibbpfMissingError,
    MapKeyError,
    RuntimeBpfError,
)
from btfgen.runtime.maps import (
    ANY,
    EXIST,
    NOEXIST,
    ArrayMap,
    HashMap,
    KeyedMap,
    MapBase,
    PerCpuArrayMap,
    PerCpuHashMap,
)
from btfgen.runtime.protocols import Codec, RawCodec, RecordCodec, as_codec
from btfgen.runtime.sections import GlobalSection, ReadOnlyError, var
from btfgen.runtime.skeleton import Namespace, Skeleton
from btfgen.runtime.system import TracefsError, possible_cpus

__all__ = [
    "ANY", "EXIST", "NOEXIST", "ArrayMap", "BpfError", "BpfPermissionError", "Codec",
    "GlobalSection", "HashMap", "KeyedMap", "LibbpfMissingError", "LibbpfObject", "Link",
    "MapBase", "MapKeyError", "Namespace", "PerCpuArrayMap", "PerCpuHashMap", "PerfBuffer",
    "PerfEventArray", "Program", "RawCodec", "ReadOnlyError", "RecordCodec", "RingBuf",
    "RingBuffer", "RuntimeBpfError", "Skeleton", "TracefsError", "WithPayload", "as_codec",
    "possible_cpus", "var",
]
