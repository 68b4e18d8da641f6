"""Run a loaded program on crafted input (``BPF_PROG_TEST_RUN``), typed.

::

    # SkBuff: btfgen gen prog.bpf.o --type "struct __sk_buff" (or from /sys/kernel/btf/vmlinux)
    r = skel.progs.classify.test_run(packet, ctx=SkBuff(mark=7))
    assert r.retval == TC_ACT_SHOT and r.ctx_out.mark == 7 and r.data_out == packet

``ctx`` is a generated record (anything with ``to_bytes()`` and a ``from_bytes``
class method) or raw bytes; ``ctx_out`` comes back as the same class.  XDP, tc,
socket filter, flow dissector, raw tracepoint and syscall programs can be run
this way (the kernel decides which program types and ctx fields it accepts, and
says EINVAL otherwise).
"""

from __future__ import annotations

import errno
from typing import Any, NamedTuple

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.errors import RuntimeBpfError, error_class

TEST_RUN_CDEF = """
struct bpf_test_run_opts {
    size_t sz;
    const void *data_in;
    void *data_out;
    uint32_t data_size_in;
    uint32_t data_size_out;
    const void *ctx_in;
    void *ctx_out;
    uint32_t ctx_size_in;
    uint32_t ctx_size_out;
    uint32_t retval;
    int repeat;
    uint32_t duration;
    uint32_t flags;
    uint32_t cpu;
    uint32_t batch_size;
};
int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);
"""
ffi.cdef(TEST_RUN_CDEF)

#: Room for data_out beyond the input: XDP programs may grow the packet at its head
#: (256 bytes of headroom) or tail.
DATA_OUT_SLACK = 4096
#: The kernel's internal "not supported" errno some program types answer with.
ENOTSUPP = 524
#: BPF_F_TEST_RUN_ON_CPU: run on opts.cpu (raw tracepoints).
F_TEST_RUN_ON_CPU = 1


class RunResult(NamedTuple):
    """What one ``BPF_PROG_TEST_RUN`` gave back."""

    retval: int
    data_out: bytes
    ctx_out: Any
    #: Average run time per repetition, as the kernel measured it.
    duration_ns: int


def _ctx_bytes(ctx: Any) -> bytes:
    if isinstance(ctx, (bytes, bytearray, memoryview)):
        return bytes(ctx)
    to_bytes = getattr(ctx, "to_bytes", None)
    if to_bytes is None or not hasattr(type(ctx), "from_bytes"):
        raise TypeError(f"test_run: ctx must be bytes or a generated record (with to_bytes/"
                        f"from_bytes), not {type(ctx).__name__}")
    return bytes(to_bytes())


def prog_test_run(prog_fd: int, name: str, data: bytes | bytearray | memoryview = b"", *,
             ctx: Any = None, repeat: int = 1, data_out_size: int | None = None,
             flags: int = 0, cpu: int = 0) -> RunResult:
    """Run program ``prog_fd`` (called ``name`` in errors) once per ``repeat`` on
    ``data`` and ``ctx``; see :meth:`Program.test_run`."""
    if repeat < 1:
        raise ValueError(f"program {name}: test_run repeat must be >= 1, not {repeat}")
    data_in = bytes(data)
    out_size = len(data_in) + DATA_OUT_SLACK if data_out_size is None else data_out_size
    if out_size < 0:
        raise ValueError(f"program {name}: data_out_size must be >= 0, not {out_size}")
    ctx_in = None if ctx is None else _ctx_bytes(ctx)

    opts = ffi.new("struct bpf_test_run_opts *")
    opts.sz = ffi.sizeof("struct bpf_test_run_opts")
    keep = []  # cffi buffers must outlive the call
    if data_in:
        buf_in = ffi.from_buffer(data_in)
        keep.append(buf_in)
        opts.data_in = buf_in
        opts.data_size_in = len(data_in)
    buf_out = ffi.new("char[]", max(out_size, 1))
    if out_size and data_in:
        opts.data_out = buf_out
        opts.data_size_out = out_size
    ctx_out = None
    if ctx_in is not None:
        cbuf = ffi.from_buffer(ctx_in)
        ctx_out = ffi.new("char[]", len(ctx_in))
        keep.append(cbuf)
        opts.ctx_in = cbuf
        opts.ctx_size_in = len(ctx_in)
        opts.ctx_out = ctx_out
        opts.ctx_size_out = len(ctx_in)
    opts.repeat = repeat
    opts.flags = flags
    opts.cpu = cpu
    while True:
        rc = lib().bpf_prog_test_run_opts(prog_fd, opts)
        err = ffi.errno or -rc
        # A signal stops the kernel's repeat loop with EINTR: the Python handler runs
        # here (Ctrl-C raises KeyboardInterrupt), otherwise the run starts over (PEP 475).
        if rc >= 0 or err != errno.EINTR:
            break
    if rc < 0:
        hint = ""
        if err == errno.ENOSPC:
            hint = f" (data_out_size={out_size} is too small for the output packet)"
        elif err in (errno.EINVAL, errno.EOPNOTSUPP, ENOTSUPP):
            hint = (" (the kernel does not test-run this program type, or refuses the data "
                    "size or a ctx field set)")
        raise error_class(err)(f"program {name}: test_run{hint}", err)
    data_out = bytes(ffi.buffer(buf_out, int(opts.data_size_out))) if opts.data_out else b""
    ctx_result: Any = None
    if ctx_in is not None:
        raw = bytes(ffi.buffer(ctx_out, int(opts.ctx_size_out)))
        if isinstance(ctx, (bytes, bytearray, memoryview)):
            ctx_result = raw
        else:
            cls = type(ctx)
            if len(raw) < len(ctx_in):
                raise RuntimeBpfError(f"program {name}: test_run returned {len(raw)} ctx bytes, "
                                      f"{cls.__name__} needs {len(ctx_in)}")
            ctx_result = cls.from_bytes(raw)
    return RunResult(int(opts.retval), data_out, ctx_result, int(opts.duration))


__all__ = ["DATA_OUT_SLACK", "F_TEST_RUN_ON_CPU", "RunResult", "TEST_RUN_CDEF", "prog_test_run"]
