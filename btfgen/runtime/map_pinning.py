"""Pinning a map on a bpffs: :class:`Pinnable`, the pinning half of ``MapBase``.

``pin(path)``/``unpin()`` after load; before load ``reuse_pinned(path)`` (the
pinned map must exist) or ``pin_path = path`` (reused when pinned, else created
and pinned by load()).  Maps an object declares ``LIBBPF_PIN_BY_NAME`` get a pin
path at open, under the object's ``pin_root``.
"""

from __future__ import annotations

import errno
import os

from btfgen.runtime._libbpf import ffi, lib
from btfgen.runtime.bpfobj import MapPtr
from btfgen.runtime.errors import BpfError, RuntimeBpfError, error_class
from btfgen.runtime.native import c_bytes, check_int

ffi.cdef("""
int bpf_map__pin(struct bpf_map *map, const char *path);
int bpf_map__unpin(struct bpf_map *map, const char *path);
int bpf_map__set_pin_path(struct bpf_map *map, const char *path);
const char *bpf_map__pin_path(const struct bpf_map *map);
bool bpf_map__is_pinned(const struct bpf_map *map);
int bpf_map__reuse_fd(struct bpf_map *map, int fd);
int bpf_obj_get(const char *pathname);
""")


def on_bpffs(path: str) -> bool:
    """Whether the directory of ``path`` is on a BPF filesystem (per /proc/mounts)."""
    where = os.path.dirname(os.path.realpath(path))
    best, kind = "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mnt = parts[1].replace("\\040", " ")
                inside = where == mnt or where.startswith(mnt.rstrip("/") + "/")
                if inside and len(mnt) >= len(best):
                    best, kind = mnt, parts[2]
    except OSError:
        return True  # cannot tell: let libbpf's own message stand
    return kind == "bpf"


class Pinnable:
    """Pinning of the map behind ``self._h`` (a :class:`MapPtr`)."""

    _h: MapPtr
    name: str

    def _loaded(self) -> None:
        """Raise unless the map's object is loaded (and not closed)."""
        self._h.owner.check_loaded()

    def pin(self, path: str) -> None:
        """Pin the loaded map at ``path`` on a bpffs (e.g. ``/sys/fs/bpf/NAME``)."""
        self._loaded()
        try:
            check_int(f"map {self.name}: pin at {path}",
                      lambda: lib().bpf_map__pin(self._h.ptr, c_bytes(path)))
        except BpfError as e:
            if e.errno != errno.EINVAL or on_bpffs(path):
                raise
            raise type(e)(f"map {self.name}: pin at {path} (its directory is not on a bpffs: "
                          "pin under /sys/fs/bpf, or mount one: mount -t bpf bpf DIR)",
                          e.errno) from None

    def unpin(self, path: str | None = None) -> None:
        """Remove the pin at ``path`` (default: where :meth:`pin` or the object put it)."""
        self._h.owner.check_open()
        if path is None and self.pin_path is None:
            raise RuntimeBpfError(f"map {self.name} has no pin path; say which pin to remove: "
                                  "unpin(path)")
        where = ffi.NULL if path is None else c_bytes(path)
        check_int(f"map {self.name}: unpin {path or self.pin_path}",
                  lambda: lib().bpf_map__unpin(self._h.ptr, where))

    @property
    def pin_path(self) -> str | None:
        """Where the map is (or will be, at load) pinned; settable before load: load()
        then reuses the map pinned there if there is one, else creates and pins it."""
        self._h.owner.check_open()
        p = lib().bpf_map__pin_path(self._h.ptr)
        return None if p == ffi.NULL else bytes(ffi.string(p)).decode("utf-8", "surrogateescape")

    @pin_path.setter
    def pin_path(self, path: str | None) -> None:
        self._h.owner.check_not_loaded(f"set the pin path of map {self.name}")
        where = ffi.NULL if path is None else c_bytes(path)
        check_int(f"map {self.name}: set pin path {path}",
                  lambda: lib().bpf_map__set_pin_path(self._h.ptr, where))

    @property
    def pinned(self) -> bool:
        """True when the map is pinned (by pin(), or at load by a pin path)."""
        self._h.owner.check_open()
        return bool(lib().bpf_map__is_pinned(self._h.ptr))

    def reuse_pinned(self, path: str) -> None:
        """Before load: make load() use the map pinned at ``path`` instead of creating
        this one (libbpf ``bpf_map__reuse_fd``); it must match in type and sizes."""
        self._h.owner.check_not_loaded(f"reuse a pinned map for {self.name}")
        fd = int(lib().bpf_obj_get(c_bytes(path)))
        if fd < 0:
            err = ffi.errno
            raise error_class(err)(f"map {self.name}: open pinned map {path}", err)
        try:
            check_int(f"map {self.name}: reuse pinned map {path}",
                      lambda: lib().bpf_map__reuse_fd(self._h.ptr, fd))
        finally:
            os.close(fd)  # libbpf keeps its own duplicate


__all__ = ["Pinnable", "on_bpffs"]
