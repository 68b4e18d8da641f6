"""The parts of the program API that need no attach target: settings before load,
libbpf's messages on the ``btfgen.libbpf`` logger, and the way down to libbpf
(``btfgen.runtime.libbpf``, ``.handle``, ``.fd``)."""

from __future__ import annotations

import logging
import socket
from types import ModuleType

import pytest

from btfgen.runtime.errors import BpfError, RuntimeBpfError
from tests.helpers.attach_progs import attach_module, open_skel

pytestmark = pytest.mark.live
BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_TRACEPOINT = 2, 5


@pytest.fixture(scope="module")
def attach_mod(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return attach_module(tmp_path_factory)


def test_settings_before_load_and_refused_after(attach_mod: ModuleType) -> None:
    with attach_mod.AttachSkel.open() as skel:
        skel.progs.auto_fail.autoattach = False
        p = skel.progs.on_kprobe
        assert p.autoload and p.autoattach and p.type == BPF_PROG_TYPE_KPROBE
        p.autoload = False
        p.autoattach = False
        p.log_level = 1
        assert (p.autoload, p.autoattach, p.log_level) == (False, False, 1)
        t = skel.progs.on_tp
        t.type = BPF_PROG_TYPE_TRACEPOINT
        t.expected_attach_type = 0
        assert t.type == BPF_PROG_TYPE_TRACEPOINT and t.expected_attach_type == 0
        skel.load()
        assert p.fd < 0 and t.fd > 0  # not loaded / loaded
        for name, value in (("autoload", True), ("type", 2), ("log_level", 0),
                            ("expected_attach_type", 1)):
            with pytest.raises(RuntimeBpfError, match=f"cannot set {name} of program"):
                setattr(p, name, value)
        with pytest.raises(RuntimeBpfError, match="cannot set attach target"):
            p.set_attach_target("do_nanosleep")
        with pytest.raises(RuntimeBpfError, match="cannot set max_entries after load"):
            skel.maps.perf_counts.max_entries = 4


def test_attach_before_load_says_so(attach_mod: ModuleType) -> None:
    with attach_mod.AttachSkel.open() as skel:
        with pytest.raises(RuntimeBpfError, match="not loaded yet; call load"):
            skel.progs.on_tp.attach_tracepoint("syscalls", "sys_enter_getppid")
        with pytest.raises(RuntimeBpfError, match="not loaded yet"):
            skel.attach()


def test_libbpf_messages_go_to_the_logger_at_any_level(attach_mod: ModuleType,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("btfgen.libbpf")
    caplog.set_level(logging.DEBUG, logger="btfgen.libbpf")
    with attach_mod.AttachSkel.open():
        pass
    debug = [r for r in caplog.records if r.name == "btfgen.libbpf"
             and r.levelno == logging.DEBUG]
    assert any("attach" in r.getMessage() for r in debug)  # "libbpf: loading object 'attach'"
    caplog.clear()
    logger.setLevel(logging.INFO)  # changed at run time: debug lines stop
    with open_skel(attach_mod) as skel:
        with pytest.raises(BpfError) as e:
            skel.progs.on_uprobe.attach_uprobe("/nonexistent/btfgen", "f")
    assert not [r for r in caplog.records if r.levelno == logging.DEBUG]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all(w in e.value.log for w in warnings)  # and on the exception


def test_way_down_to_libbpf(attach_mod: ModuleType) -> None:
    from btfgen.runtime import libbpf
    from btfgen.runtime.libbpf import ffi, lib
    assert libbpf.ffi is ffi
    with open_skel(attach_mod) as skel:
        prog = skel.progs.on_tp
        assert ffi.typeof(prog.handle) is ffi.typeof("struct bpf_program *")
        assert ffi.typeof(skel.handle) is ffi.typeof("struct bpf_object *")
        m = skel.obj.maps["perf_counts"]
        assert ffi.typeof(m.handle) is ffi.typeof("struct bpf_map *")
        assert lib.bpf_program__fd(prog.handle) == prog.fd > 0
        assert ffi.string(lib.bpf_object__name(skel.handle)) == b"attach"
        assert lib.bpf_map__fd(m.handle) == skel.maps.perf_counts.fd
        link = prog.attach_tracepoint("syscalls", "sys_enter_getppid")
        assert lib.bpf_link__fd(link.handle) == link.fd
        # declarations the runtime lacks go into the same ffi
        ffi.cdef("uint32_t bpf_program__flags(const struct bpf_program *prog);", override=True)
        assert isinstance(lib.bpf_program__flags(prog.handle), int)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            filt = skel.progs.on_socket.attach_socket(s)
            with pytest.raises(RuntimeBpfError, match="not a libbpf bpf_link"):
                filt.handle  # noqa: B018
    with pytest.raises(RuntimeBpfError, match="is closed"):
        prog.handle  # noqa: B018
