"""The system libbpf, loaded through cffi in ABI mode (no compiler needed at install).

Only declarations are here; :func:`lib` loads the shared object once.  ``BTFGEN_LIBBPF``
names another build (a path to ``libbpf.so``).  libbpf >= 1.0 is required: the 1.0
API (``perf_buffer__new`` with opts, errno-returning calls) is what the runtime uses.
"""

from __future__ import annotations

import os
import re
from typing import Any

from btfgen.runtime.errors import LibbpfMissingError
from btfgen.runtime.lazy_ffi import LazyFFI

#: Minimum (major, minor) of libbpf the runtime works with.
MIN_VERSION = (1, 0)

CDEF = """
struct bpf_object; struct bpf_program; struct bpf_map; struct bpf_link;
struct perf_buffer; struct ring_buffer;

typedef int (*libbpf_print_fn_t)(int level, const char *fmt, void *ap);
libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
uint32_t libbpf_major_version(void);
uint32_t libbpf_minor_version(void);
const char *libbpf_version_string(void);
int libbpf_num_possible_cpus(void);

struct bpf_object_open_opts {
    size_t sz;
    const char *object_name;
    bool relaxed_maps;
    const char *pin_root_path;
    uint32_t _removed_attach_prog_fd;
    const char *kconfig;
    const char *btf_custom_path;
    char *kernel_log_buf;
    size_t kernel_log_size;
    uint32_t kernel_log_level;
};
struct bpf_object *bpf_object__open_mem(const void *obj_buf, size_t obj_buf_sz,
                                        const struct bpf_object_open_opts *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
const char *bpf_object__name(const struct bpf_object *obj);
struct bpf_program *bpf_object__next_program(const struct bpf_object *obj,
                                             struct bpf_program *prog);
struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj, const char *name);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);

const char *bpf_program__name(const struct bpf_program *prog);
const char *bpf_program__section_name(const struct bpf_program *prog);
bool bpf_program__autoload(const struct bpf_program *prog);
int bpf_program__set_autoload(struct bpf_program *prog, bool autoload);
bool bpf_program__autoattach(const struct bpf_program *prog);
int bpf_program__fd(const struct bpf_program *prog);
int bpf_program__type(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach_xdp(const struct bpf_program *prog, int ifindex);
int bpf_link__fd(const struct bpf_link *link);
int bpf_link__destroy(struct bpf_link *link);

int bpf_map__fd(const struct bpf_map *map);
const char *bpf_map__name(const struct bpf_map *map);
int bpf_map__type(const struct bpf_map *map);
uint32_t bpf_map__max_entries(const struct bpf_map *map);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
uint32_t bpf_map__map_flags(const struct bpf_map *map);
uint32_t bpf_map__key_size(const struct bpf_map *map);
uint32_t bpf_map__value_size(const struct bpf_map *map);
int bpf_map__set_key_size(struct bpf_map *map, uint32_t size);
int bpf_map__set_value_size(struct bpf_map *map, uint32_t size);
void *bpf_map__initial_value(struct bpf_map *map, size_t *psize);
bool bpf_map__is_internal(const struct bpf_map *map);
int bpf_map__lookup_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                         void *value, size_t value_sz, uint64_t flags);
int bpf_map__update_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                         const void *value, size_t value_sz, uint64_t flags);
int bpf_map__delete_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                         uint64_t flags);
int bpf_map__lookup_and_delete_elem(const struct bpf_map *map, const void *key, size_t key_sz,
                                    void *value, size_t value_sz, uint64_t flags);
int bpf_map__get_next_key(const struct bpf_map *map, const void *cur_key, void *next_key,
                          size_t key_sz);

struct bpf_map_batch_opts { size_t sz; uint64_t elem_flags; uint64_t flags; };
int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values,
                         uint32_t *count, const struct bpf_map_batch_opts *opts);
int bpf_map_lookup_and_delete_batch(int fd, void *in_batch, void *out_batch, void *keys,
                                    void *values, uint32_t *count,
                                    const struct bpf_map_batch_opts *opts);
int bpf_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count,
                         const struct bpf_map_batch_opts *opts);
int bpf_map_delete_batch(int fd, const void *keys, uint32_t *count,
                         const struct bpf_map_batch_opts *opts);

struct perf_event_header { uint32_t type; uint16_t misc; uint16_t size; };
struct perf_event_attr {
    uint32_t type; uint32_t size; uint64_t config; uint64_t sample_period;
    uint64_t sample_type; uint64_t read_format; uint64_t flags; uint32_t wakeup_events;
    uint32_t bp_type; uint64_t config1; uint64_t config2; uint64_t branch_sample_type;
    uint64_t sample_regs_user; uint32_t sample_stack_user; int32_t clockid;
    uint64_t sample_regs_intr; uint32_t aux_watermark; uint16_t sample_max_stack;
    uint16_t reserved2;
};
typedef int (*perf_buffer_event_fn)(void *ctx, int cpu, struct perf_event_header *event);
struct perf_buffer_raw_opts { size_t sz; int cpu_cnt; int *cpus; int *map_keys; };
struct perf_buffer *perf_buffer__new_raw(int map_fd, size_t page_cnt,
                                         struct perf_event_attr *attr,
                                         perf_buffer_event_fn event_cb, void *ctx,
                                         const struct perf_buffer_raw_opts *opts);
void perf_buffer__free(struct perf_buffer *pb);
int perf_buffer__epoll_fd(const struct perf_buffer *pb);
int perf_buffer__poll(struct perf_buffer *pb, int timeout_ms);
int perf_buffer__consume(struct perf_buffer *pb);
size_t perf_buffer__buffer_cnt(const struct perf_buffer *pb);
int perf_buffer__buffer(struct perf_buffer *pb, int buf_idx, void **buf, size_t *buf_size);

typedef int (*ring_buffer_sample_fn)(void *ctx, void *data, size_t size);
struct ring_buffer_opts { size_t sz; };
struct ring_buffer *ring_buffer__new(int map_fd, ring_buffer_sample_fn sample_cb, void *ctx,
                                     const struct ring_buffer_opts *opts);
void ring_buffer__free(struct ring_buffer *rb);
int ring_buffer__poll(struct ring_buffer *rb, int timeout_ms);
int ring_buffer__consume(struct ring_buffer *rb);
int ring_buffer__epoll_fd(const struct ring_buffer *rb);
"""

LIBC_CDEF = """
int vsnprintf(char *str, size_t size, const char *format, void *ap);
int mount(const char *source, const char *target, const char *fstype, unsigned long flags,
          const void *data);
"""

#: Declarations are parsed on first use (cffi and pycparser are not even imported
#: before that): importing a generated module should stay cheap.
ffi: Any = LazyFFI()
ffi.cdef(CDEF)
ffi.cdef(LIBC_CDEF)

_lib: Any = None
_libc: Any = None


def lib() -> Any:
    """The loaded libbpf (raises :class:`LibbpfMissingError` with what to install)."""
    global _lib
    if _lib is None:
        _lib = _load()
    return _lib


def libc() -> Any:
    """The C library (vsnprintf for libbpf's log lines, mount for tracefs)."""
    global _libc
    if _libc is None:
        _libc = ffi.dlopen(None)
    return _libc


def _load() -> Any:
    chosen = os.environ.get("BTFGEN_LIBBPF")
    path = chosen or "libbpf.so.1"
    try:
        handle = ffi.dlopen(path)
    except OSError as e:
        if not chosen:  # an older soname only (Ubuntu 22.04: libbpf.so.0, libbpf 0.5)?
            try:
                _check_libbpf(ffi.dlopen("libbpf.so.0"), "libbpf.so.0")
            except OSError:
                pass
        where = f"BTFGEN_LIBBPF={path}" if chosen else "libbpf.so.1"
        raise LibbpfMissingError(
            f"cannot load {where} ({e}); install the libbpf1 package (Debian/Ubuntu: "
            "apt-get install libbpf1) or set BTFGEN_LIBBPF to a libbpf.so >= 1.0") from None
    _check_libbpf(handle, path)
    return handle


def _check_libbpf(handle: Any, path: str) -> None:
    """Raise one sentence when ``handle`` is older than :data:`MIN_VERSION` or lacks a
    function the runtime declares (calling it would fail later, mid-way)."""
    try:
        found = (int(handle.libbpf_major_version()), int(handle.libbpf_minor_version()))
    except AttributeError:  # both appeared in libbpf 0.6
        found = (0, 0)
    missing = [name for name in dict.fromkeys(re.findall(r"\b([a-z_][a-z0-9_]*)\(", CDEF))
               if not hasattr(handle, name)]
    if found >= MIN_VERSION and not missing:
        return
    fix = ("install a newer one (the libbpf1 package of Debian 12 or Ubuntu 24.04, or a build of"
           " github.com/libbpf/libbpf) and, if it is not the system's libbpf.so.1, point"
           " BTFGEN_LIBBPF at it")
    need = f"{MIN_VERSION[0]}.{MIN_VERSION[1]}"
    if found == (0, 0):
        raise LibbpfMissingError(f"{path} has no libbpf_major_version(), so it is no libbpf or"
                                 f" one older than 0.6, and btfgen needs libbpf {need}: {fix}")
    if found < MIN_VERSION:
        raise LibbpfMissingError(f"{path} is libbpf {found[0]}.{found[1]}, older than the libbpf"
                                 f" {need} btfgen needs: {fix}")
    names = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
    raise LibbpfMissingError(f"{path} (libbpf {found[0]}.{found[1]}) lacks {names}, which"
                             f" btfgen calls: {fix}")


def version() -> str:
    """libbpf's version string, e.g. ``"v1.1"``."""
    return str(ffi.string(lib().libbpf_version_string()).decode())
