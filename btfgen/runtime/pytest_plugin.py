"""pytest plugin (entry point ``pytest11``, active once btfgen is installed).

A test module names its skeleton class and gets it loaded once for the module::

    from pktfilter_skel import PktfilterSkel, SkBuff

    BPF_SKELETON = PktfilterSkel          # or a function returning a loaded skeleton

    def test_tcp_is_marked(bpf_skel):
        r = bpf_skel.progs.tc_mark.test_run(tcp_packet, ctx=SkBuff())
        assert r.retval == 0 and r.ctx_out.mark == 0x42

``bpf_skel`` opens and loads ``BPF_SKELETON`` (``open_and_load()``) at the
module's first use and destroys it after the module's last test.  Where the
kernel refuses BPF to this process (not root, no BPF syscall) the tests using
it are skipped with the kernel's reason; any other load failure is an error.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def bpf_skel(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The test module's ``BPF_SKELETON``, loaded once for the module."""
    from btfgen.runtime.errors import BpfError, BpfPermissionError

    factory = getattr(request.module, "BPF_SKELETON", None)
    if factory is None:
        raise pytest.UsageError(f"{request.module.__name__}: the bpf_skel fixture needs "
                                "BPF_SKELETON = <generated Skel class> in the test module")
    try:
        skel = factory.open_and_load() if hasattr(factory, "open_and_load") else factory()
    except BpfError as e:
        if isinstance(e, BpfPermissionError) or e.errno == errno.ENOSYS:
            pytest.skip(f"the kernel refuses BPF here: {str(e).splitlines()[0]}")
        raise
    try:
        yield skel
    finally:
        skel.destroy()
