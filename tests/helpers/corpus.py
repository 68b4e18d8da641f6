"""The real-world corpus: BPF objects embedded in the libbpf-tools binaries.

Each tool (``/usr/sbin/execsnoop`` ...) carries its ``.bpf.o`` as a skeleton's
embedded bytes.  We find ELF images whose e_machine is EM_BPF and cut them out
using the section header table's end as the image size.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

EM_BPF = 247


def libbpf_tools_binaries() -> list[Path]:
    """Executables shipped by the Debian libbpf-tools package."""
    out = subprocess.run(["dpkg", "-L", "libbpf-tools"], capture_output=True, text=True,
                         check=True).stdout
    paths = [Path(p) for p in out.split() if p.startswith("/usr/sbin/")]
    return sorted(p for p in paths if p.is_file() and os.access(p, os.X_OK))


def embedded_bpf_objects(blob: bytes) -> list[bytes]:
    """Every little- or big-endian ELF64 EM_BPF image inside ``blob``."""
    found = []
    pos = blob.find(b"\x7fELF", 1)
    while pos != -1:
        hdr = blob[pos:pos + 64]
        if len(hdr) == 64 and hdr[4] == 2 and hdr[5] in (1, 2):
            e = "<" if hdr[5] == 1 else ">"
            machine = struct.unpack_from(e + "H", hdr, 18)[0]
            if machine == EM_BPF:
                shoff = struct.unpack_from(e + "Q", hdr, 40)[0]
                shentsize, shnum = struct.unpack_from(e + "HH", hdr, 58)
                size = shoff + shentsize * shnum
                if 64 <= size <= len(blob) - pos:
                    found.append(blob[pos:pos + size])
        pos = blob.find(b"\x7fELF", pos + 1)
    return found


def extract_corpus(dest: Path) -> list[Path]:
    """Write each embedded object as ``dest/<tool>.bpf.o`` (``<tool>-N`` if several)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for binary in libbpf_tools_binaries():
        objs = embedded_bpf_objects(binary.read_bytes())
        for n, obj in enumerate(objs):
            stem = binary.name if len(objs) == 1 else f"{binary.name}-{n}"
            out = dest / f"{stem}.bpf.o"
            out.write_bytes(obj)
            written.append(out)
    return written


if __name__ == "__main__":
    import sys

    for p in extract_corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")):
        print(p)
