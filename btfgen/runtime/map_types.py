"""BPF_MAP_TYPE_* numbers the runtime treats specially (uapi/linux/bpf.h)."""

HASH, ARRAY, PERF_EVENT_ARRAY, PERCPU_HASH, PERCPU_ARRAY = 1, 2, 4, 5, 6
LRU_PERCPU_HASH, RINGBUF = 10, 27
