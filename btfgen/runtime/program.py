"""A program of a BPF object: settings before load, and every way libbpf attaches it.

Each ``attach_*`` returns a :class:`~btfgen.runtime.link.Link` owned by the
program's object (destroyed with it) and listed in ``program.links``.  The
libbpf call behind each method is in the README's attach table.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.errors import NotSupportedError, RuntimeBpfError
from btfgen.runtime.link import BpfLinkPart, FdPart, Link, Part
from btfgen.runtime.native import ObjectCore, c_bytes, c_name, check_int, check_ptr
from btfgen.runtime.system import ensure_tracefs, ifindex, kprobes_available, needs_tracefs

if TYPE_CHECKING:
    from btfgen.runtime.perf_event import EventSpec
    from btfgen.runtime.testrun import RunResult

ffi.cdef("""
struct bpf_uprobe_opts { size_t sz; size_t ref_ctr_offset; uint64_t bpf_cookie; bool retprobe;
                         const char *func_name; };
struct bpf_link *bpf_program__attach_uprobe_opts(const struct bpf_program *prog, int pid,
    const char *binary_path, size_t func_offset, const struct bpf_uprobe_opts *opts);
struct bpf_usdt_opts { size_t sz; uint64_t usdt_cookie; };
struct bpf_link *bpf_program__attach_usdt(const struct bpf_program *prog, int pid,
    const char *binary_path, const char *usdt_provider, const char *usdt_name,
    const struct bpf_usdt_opts *opts);
struct bpf_kprobe_opts { size_t sz; uint64_t bpf_cookie; size_t offset; bool retprobe; };
struct bpf_link *bpf_program__attach_kprobe_opts(const struct bpf_program *prog,
    const char *func_name, const struct bpf_kprobe_opts *opts);
struct bpf_kprobe_multi_opts { size_t sz; const char **syms; const unsigned long *addrs;
                               const uint64_t *cookies; size_t cnt; bool retprobe; };
struct bpf_link *bpf_program__attach_kprobe_multi_opts(const struct bpf_program *prog,
    const char *pattern, const struct bpf_kprobe_multi_opts *opts);
struct bpf_link *bpf_program__attach_tracepoint(const struct bpf_program *prog,
    const char *tp_category, const char *tp_name);
struct bpf_link *bpf_program__attach_raw_tracepoint(const struct bpf_program *prog,
    const char *tp_name);
struct bpf_link *bpf_program__attach_cgroup(const struct bpf_program *prog, int cgroup_fd);
struct bpf_link *bpf_program__attach_netns(const struct bpf_program *prog, int netns_fd);
union bpf_iter_link_info {
    struct { uint32_t map_fd; } map;
    struct { uint32_t order; uint32_t cgroup_fd; uint64_t cgroup_id; } cgroup;
    struct { uint32_t tid; uint32_t pid; uint32_t pid_fd; } task;
};
struct bpf_iter_attach_opts { size_t sz; union bpf_iter_link_info *link_info;
                              uint32_t link_info_len; };
struct bpf_link *bpf_program__attach_iter(const struct bpf_program *prog,
    const struct bpf_iter_attach_opts *opts);
struct bpf_link_create_opts { size_t sz; uint32_t flags; void *iter_info; uint32_t iter_info_len;
                              uint32_t target_btf_id; uint64_t _union[4]; };
int bpf_link_create(int prog_fd, int target_fd, int attach_type,
                    const struct bpf_link_create_opts *opts);
void bpf_program__set_autoattach(struct bpf_program *prog, bool autoattach);
int bpf_program__set_type(struct bpf_program *prog, int type);
int bpf_program__expected_attach_type(const struct bpf_program *prog);
int bpf_program__set_expected_attach_type(struct bpf_program *prog, int type);
uint32_t bpf_program__log_level(const struct bpf_program *prog);
int bpf_program__set_log_level(struct bpf_program *prog, uint32_t log_level);
int bpf_program__set_attach_target(struct bpf_program *prog, int attach_prog_fd,
                                   const char *attach_func_name);
""")

#: Section prefixes libbpf has no auto-attach for (they need a target: interface,
#: cgroup, socket, perf event...).
MANUAL_PREFIXES = ("xdp", "tc", "classifier", "action", "socket", "sk_", "cgroup",
                   "flow_dissector", "lwt_", "sockops", "sk_skb", "sk_msg", "perf_event",
                   "syscall", "struct_ops", "netfilter", "tcx", "netkit")
#: Sections naming a kind but no target: libbpf's skeleton skips them.
BARE_SECTIONS = frozenset({
    "uprobe", "uretprobe", "uprobe.s", "uretprobe.s", "uprobe.multi", "uretprobe.multi",
    "usdt", "usdt.s", "kprobe", "kretprobe", "kprobe.multi", "kretprobe.multi", "ksyscall",
    "kretsyscall", "tp", "tracepoint", "raw_tp", "raw_tracepoint", "raw_tp.w",
    "raw_tracepoint.w"})

BPF_XDP = 37
#: XDP attach modes (``attach_xdp(mode=...)``) -> XDP_FLAGS_*.
XDP_MODES = {"skb": 2, "generic": 2, "drv": 4, "native": 4, "hw": 8, "offload": 8}
#: cgroup iterator walks (``attach_iter(order=...)``) -> enum bpf_cgroup_iter_order.
CGROUP_ITER_ORDERS = {"self": 1, "descendants_pre": 2, "descendants_post": 3,
                      "ancestors_up": 4}
SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27


def auto_attachable(section: str) -> bool:
    """Whether libbpf's skeleton attaches a program of ``section`` by itself."""
    return section not in BARE_SECTIONS and not section.startswith(MANUAL_PREFIXES)


class Program:
    """A program of the object: name, section, settings before load, attach methods.

    ``handle`` is the ``struct bpf_program *`` (for :mod:`btfgen.runtime.libbpf`);
    every getter and setter raises once the object is destroyed.
    """

    def __init__(self, ptr: Any, core: ObjectCore) -> None:
        self._ptr = ptr
        self._core = core
        self.name: str = c_name(lib().bpf_program__name(ptr))
        self.section: str = c_name(lib().bpf_program__section_name(ptr))
        #: Live links of this program, in attach order (however they were made).
        self.links: list[Link] = []

    # -- the way down --
    @property
    def handle(self) -> Any:
        """The ``struct bpf_program *`` in :mod:`btfgen.runtime.libbpf`'s ffi."""
        self._core.check_open()
        return self._ptr

    @property
    def fd(self) -> int:
        """The program fd after load (-1 before)."""
        return int(lib().bpf_program__fd(self.handle))

    # -- settings (before load) --
    def _set(self, what: str, call: Any, *args: Any) -> None:
        ptr = self.handle
        self._core.check_not_loaded(f"set {what} of program {self.name}")
        check_int(f"program {self.name}: set {what}", lambda: call(ptr, *args))

    @property
    def autoload(self) -> bool:
        """Whether load() loads this program (settable before load)."""
        return bool(lib().bpf_program__autoload(self.handle))

    @autoload.setter
    def autoload(self, value: bool) -> None:
        self._set("autoload", lib().bpf_program__set_autoload, bool(value))

    @property
    def autoattach(self) -> bool:
        """Whether the skeleton's attach() attaches this program (settable before load)."""
        return bool(lib().bpf_program__autoattach(self.handle))

    @autoattach.setter
    def autoattach(self, value: bool) -> None:
        ptr = self.handle  # libbpf's setter returns void
        lib().bpf_program__set_autoattach(ptr, bool(value))

    @property
    def type(self) -> int:
        """BPF_PROG_TYPE_* (settable before load)."""
        return int(lib().bpf_program__type(self.handle))

    @type.setter
    def type(self, value: int) -> None:
        self._set("type", lib().bpf_program__set_type, int(value))

    @property
    def expected_attach_type(self) -> int:
        """BPF_* attach type (settable before load)."""
        return int(lib().bpf_program__expected_attach_type(self.handle))

    @expected_attach_type.setter
    def expected_attach_type(self, value: int) -> None:
        self._set("expected_attach_type", lib().bpf_program__set_expected_attach_type,
                  int(value))

    @property
    def log_level(self) -> int:
        """The verifier log level for this program (settable before load)."""
        return int(lib().bpf_program__log_level(self.handle))

    @log_level.setter
    def log_level(self, value: int) -> None:
        self._set("log_level", lib().bpf_program__set_log_level, int(value))

    def set_attach_target(self, func: str | None, *, target_prog: Program | int | None = None
                          ) -> None:
        """The BTF target of an fentry/fexit/freplace program (before load):
        a kernel function, or a function of ``target_prog`` (a Program or fd)."""
        fd = 0 if target_prog is None else (
            target_prog if isinstance(target_prog, int) else target_prog.fd)
        name = ffi.NULL if func is None else c_bytes(func)
        self._set("attach target", lib().bpf_program__set_attach_target, fd, name)

    # -- attaching --
    def _attach(self, what: str, call: Any, has_fd: bool = True) -> Link:
        """Run a libbpf attach returning ``struct bpf_link *``; the Link."""
        ptr = self.handle
        self._core.check_loaded()
        link_ptr = check_ptr(f"program {self.name}: attach {what}", lambda: call(ptr))
        return self._add(BpfLinkPart(link_ptr, has_fd), what)

    def _add(self, part: Part, what: str) -> Link:
        """Own ``part`` (detached with the object) and list its Link."""
        try:
            self._core.own(part)
        except BaseException:
            part.close()
            raise
        link = Link(part, self, self._core, what)
        self.links.append(link)
        return link

    def _forget(self, link: Link) -> None:
        if link in self.links:
            self.links.remove(link)

    def attach(self) -> Link:
        """Attach as the section name says (``tp/...``, ``uprobe/...``); returns the link."""
        self._core.check_loaded()
        if self.section in BARE_SECTIONS or self.section.startswith(MANUAL_PREFIXES):
            raise RuntimeBpfError(
                f"program {self.name}: section {self.section!r} names no target libbpf can "
                "attach to; use one of the attach_* methods (README: attach table)")
        if needs_tracefs(self.section):
            ensure_tracefs()
        if self.section.startswith(("kprobe", "kretprobe", "ksyscall", "kretsyscall")):
            _require_kprobes(self.name)
        return self._attach(f"by section {self.section}",
                            lambda p: lib().bpf_program__attach(p))

    def attach_uprobe(self, binary: str | os.PathLike[str], func: str | None = None, *,
                      offset: int = 0, pid: int = -1, retprobe: bool = False,
                      cookie: int = 0) -> Link:
        """uprobe (or uretprobe) on ``func`` + ``offset`` in ``binary`` (a path, or a
        library name such as ``"libc.so.6"`` found as libbpf finds it); ``pid`` -1
        for every process."""
        path = os.fspath(binary)
        opts = ffi.new("struct bpf_uprobe_opts *")
        opts.sz = ffi.sizeof("struct bpf_uprobe_opts")
        opts.bpf_cookie = cookie
        opts.retprobe = retprobe
        fname = ffi.new("char[]", c_bytes(func)) if func is not None else ffi.NULL
        opts.func_name = fname
        _uprobe_tracefs()
        kind = "uretprobe" if retprobe else "uprobe"
        where = f"{path}:{func or ''}{'+' + hex(offset) if offset else ''}"
        return self._attach(f"{kind} {where}", lambda p: lib().bpf_program__attach_uprobe_opts(
            p, pid, c_bytes(path), offset, opts))

    def attach_usdt(self, binary: str | os.PathLike[str], provider: str, name: str, *,
                    pid: int = -1, cookie: int = 0) -> Link:
        """USDT probe ``provider:name`` of ``binary`` (path or library name)."""
        path = os.fspath(binary)
        opts = ffi.new("struct bpf_usdt_opts *")
        opts.sz = ffi.sizeof("struct bpf_usdt_opts")
        opts.usdt_cookie = cookie
        _uprobe_tracefs()
        return self._attach(f"usdt {path}:{provider}:{name}",
                            lambda p: lib().bpf_program__attach_usdt(
                                p, pid, c_bytes(path), c_bytes(provider), c_bytes(name), opts),
                            has_fd=False)

    def attach_kprobe(self, func: str, *, offset: int = 0, retprobe: bool = False,
                      cookie: int = 0) -> Link:
        """kprobe (or kretprobe) on kernel function ``func`` + ``offset``."""
        self._core.check_loaded()
        _require_kprobes(self.name)
        opts = ffi.new("struct bpf_kprobe_opts *")
        opts.sz = ffi.sizeof("struct bpf_kprobe_opts")
        opts.bpf_cookie = cookie
        opts.offset = offset
        opts.retprobe = retprobe
        kind = "kretprobe" if retprobe else "kprobe"
        return self._attach(f"{kind} {func}", lambda p: lib().bpf_program__attach_kprobe_opts(
            p, c_bytes(func), opts))

    def attach_kprobe_multi(self, pattern: str, *, retprobe: bool = False) -> Link:
        """kprobe.multi on every kernel function matching the glob ``pattern``."""
        self._core.check_loaded()
        _require_kprobes(self.name)
        opts = ffi.new("struct bpf_kprobe_multi_opts *")
        opts.sz = ffi.sizeof("struct bpf_kprobe_multi_opts")
        opts.retprobe = retprobe
        return self._attach(f"kprobe.multi {pattern}",
                            lambda p: lib().bpf_program__attach_kprobe_multi_opts(
                                p, c_bytes(pattern), opts))

    def attach_tracepoint(self, category: str, name: str) -> Link:
        """Tracepoint ``category:name`` (``"syscalls", "sys_enter_openat"``)."""
        ensure_tracefs()
        return self._attach(f"tracepoint {category}:{name}",
                            lambda p: lib().bpf_program__attach_tracepoint(
                                p, c_bytes(category), c_bytes(name)))

    def attach_raw_tracepoint(self, name: str) -> Link:
        """Raw tracepoint ``name`` (``"sys_enter"``)."""
        return self._attach(f"raw tracepoint {name}",
                            lambda p: lib().bpf_program__attach_raw_tracepoint(p, c_bytes(name)))

    def attach_perf_event(self, event: EventSpec = "cpu-clock", *, freq: int | None = None,
                          period: int | None = None, cpus: Sequence[int] | None = None,
                          pid: int = -1) -> Link:
        """Open perf events (``"cpu-clock"``, ``"cycles"``... or ``(type, config)``) on
        each CPU of ``cpus`` (default: every online CPU), sampling at ``freq`` Hz or
        every ``period`` events (default 49 Hz), and attach to each: one Link."""
        from btfgen.runtime.perf_event import attach_perf_event
        ptr = self.handle
        self._core.check_loaded()
        part, what = attach_perf_event(self.name, ptr, event, freq=freq, period=period,
                                       cpus=cpus, pid=pid)
        return self._add(part, what)

    def attach_tc(self, interface: int | str, *, direction: str = "ingress", priority: int = 1,
                  handle: int = 1) -> Link:
        """tc classifier on ``interface`` (name or index), ``"ingress"`` or ``"egress"``;
        creates the clsact qdisc if missing and removes it on detach if it did."""
        from btfgen.runtime.tc import attach_tc
        prog_fd = self.fd
        self._core.check_loaded()
        part, what = attach_tc(self.name, prog_fd, interface, direction=direction,
                               priority=priority, handle=handle)
        return self._add(part, what)

    def attach_xdp(self, interface: int | str, *, mode: str | None = None) -> Link:
        """XDP on ``interface`` (name or index); ``mode`` ``"skb"``/``"generic"``,
        ``"drv"``/``"native"`` or ``"hw"``/``"offload"`` (default: the kernel's choice)."""
        idx = ifindex(interface)
        if mode is None:
            return self._attach(f"xdp ifindex {idx}",
                                lambda p: lib().bpf_program__attach_xdp(p, idx))
        if mode not in XDP_MODES:
            raise ValueError(f"attach_xdp: mode must be one of {sorted(XDP_MODES)} or None, "
                             f"not {mode!r}")
        prog_fd = self.fd
        self._core.check_loaded()
        opts = ffi.new("struct bpf_link_create_opts *")
        opts.sz = ffi.sizeof("struct bpf_link_create_opts")
        opts.flags = XDP_MODES[mode]
        fd = check_int(f"program {self.name}: attach xdp ({mode} mode) to ifindex {idx}",
                       lambda: lib().bpf_link_create(prog_fd, idx, BPF_XDP, opts))
        return self._add(FdPart(fd), f"xdp ifindex {idx} mode {mode}")

    def attach_cgroup(self, path: str | os.PathLike[str] | int) -> Link:
        """cgroup program on the cgroup directory ``path`` (or an open cgroup fd)."""
        return self._attach_fd("cgroup", path, lib().bpf_program__attach_cgroup, os.O_DIRECTORY)

    def attach_netns(self, path: str | os.PathLike[str] | int = "/proc/self/ns/net") -> Link:
        """flow_dissector / sk_lookup program on a network namespace (path or fd)."""
        return self._attach_fd("netns", path, lib().bpf_program__attach_netns, 0)

    def _attach_fd(self, kind: str, target: str | os.PathLike[str] | int, call: Any,
                   flags: int) -> Link:
        if isinstance(target, int):
            return self._attach(f"{kind} fd {target}", lambda p: call(p, target))
        path = os.fspath(target)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | flags)
        except OSError as e:
            raise RuntimeBpfError(f"attach_{kind}: cannot open {path}: {e.strerror}") from None
        try:
            return self._attach(f"{kind} {path}", lambda p: call(p, fd))
        finally:
            os.close(fd)

    def attach_socket(self, sock: socket.socket | int) -> Link:
        """Socket filter on ``sock`` (a socket object or its fd): SO_ATTACH_BPF.

        ``destroy()`` detaches it if the socket is still open."""
        from btfgen.runtime.link import DetachPart
        fd = sock if isinstance(sock, int) else sock.fileno()
        prog_fd = self.fd
        self._core.check_loaded()
        try:
            ident = os.fstat(fd)
            if not stat.S_ISSOCK(ident.st_mode):
                raise RuntimeBpfError(f"attach_socket: fd {fd} is not a socket")
            s = socket.socket(fileno=os.dup(fd))
            try:
                s.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, prog_fd)
            finally:
                s.close()
        except OSError as e:
            raise _os_error(f"program {self.name}: attach socket filter to fd {fd}", e) from None

        def detach() -> None:
            try:
                now = os.fstat(fd)
            except OSError:
                return  # closed: the filter went with the socket
            if (now.st_dev, now.st_ino) == (ident.st_dev, ident.st_ino):
                s = socket.socket(fileno=os.dup(fd))
                try:
                    s.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
                except OSError:
                    pass  # already detached
                finally:
                    s.close()

        return self._add(DetachPart(detach), f"socket fd {fd}")

    def attach_iter(self, *, map: Any = None, pid: int | None = None,
                    cgroup: str | os.PathLike[str] | int | None = None,
                    order: str = "self") -> Link:
        """BPF iterator (``SEC("iter/...")``); ``map`` for map iterators (a map or fd),
        ``pid`` to walk one process, ``cgroup`` (path or id) for cgroup iterators,
        walked in ``order``: ``"self"``, ``"descendants_pre"``, ``"descendants_post"``
        or ``"ancestors_up"``.  ``link.read()`` runs it."""
        info = ffi.new("union bpf_iter_link_info *")
        keep: list[int] = []
        if map is not None:
            info.map.map_fd = map if isinstance(map, int) else map.fd
        if pid is not None:
            info.task.pid = pid
        if cgroup is not None:
            if order not in CGROUP_ITER_ORDERS:
                raise ValueError(f"attach_iter: order must be one of "
                                 f"{', '.join(CGROUP_ITER_ORDERS)}, not {order!r}")
            info.cgroup.order = CGROUP_ITER_ORDERS[order]
            if isinstance(cgroup, int):
                info.cgroup.cgroup_id = cgroup
            else:
                try:
                    cfd = os.open(os.fspath(cgroup), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                except OSError as e:
                    raise RuntimeBpfError(f"attach_iter: cannot open cgroup {cgroup}: "
                                          f"{e.strerror}") from None
                keep.append(cfd)
                info.cgroup.cgroup_fd = cfd
        opts = ffi.new("struct bpf_iter_attach_opts *")
        opts.sz = ffi.sizeof("struct bpf_iter_attach_opts")
        if map is not None or pid is not None or cgroup is not None:
            opts.link_info = info
            opts.link_info_len = ffi.sizeof("union bpf_iter_link_info")
        try:
            return self._attach(f"iter {self.section}",
                                lambda p: lib().bpf_program__attach_iter(p, opts))
        finally:
            for fd in keep:
                os.close(fd)

    def detach(self) -> None:
        """Destroy every link of this program."""
        for link in list(self.links):
            link.destroy()

    def __repr__(self) -> str:
        return f"<Program {self.name} section={self.section!r}>"

    def test_run(self, data: bytes | bytearray | memoryview = b"", *, ctx: Any = None,
                 repeat: int = 1, data_out_size: int | None = None) -> RunResult:
        """Run the loaded program on ``data`` (and ``ctx``: a generated record such as
        ``struct __sk_buff`` or bytes) with ``BPF_PROG_TEST_RUN``; returns
        ``(retval, data_out, ctx_out, duration_ns)``, ``ctx_out`` typed as ``ctx``.
        See :mod:`btfgen.runtime.testrun`."""
        from btfgen.runtime.testrun import prog_test_run

        self._core.check_loaded()
        return prog_test_run(self.fd, self.name, data, ctx=ctx, repeat=repeat,
                             data_out_size=data_out_size)


def _uprobe_tracefs() -> None:
    """libbpf makes uprobes through the uprobe PMU; only without it (old kernels)
    does it fall back to tracefs's uprobe_events."""
    if not os.path.isdir("/sys/bus/event_source/devices/uprobe"):
        ensure_tracefs()


def _require_kprobes(prog: str) -> None:
    if not kprobes_available():
        raise NotSupportedError(f"program {prog}: this kernel has no kprobes (CONFIG_KPROBES "
                                "is off), so kprobe, kretprobe, ksyscall and kprobe.multi "
                                "programs cannot be attached")


def _os_error(what: str, e: OSError) -> OSError:
    from btfgen.runtime.errors import error_class
    err = e.errno or errno.EINVAL
    return error_class(err)(what, err)
