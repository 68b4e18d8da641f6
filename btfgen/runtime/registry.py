"""Which :class:`~btfgen.runtime.bpfobj.LibbpfObject` a program's or map's shared
state (its ``ObjectCore``) belongs to, held weakly: maps whose values are programs
or maps (prog arrays, map-in-map) turn the ids the kernel gives back into the
object's own :class:`Program`/map objects through it."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from btfgen.runtime.bpfobj import LibbpfObject

_OBJECTS: weakref.WeakKeyDictionary[Any, weakref.ref[LibbpfObject]] = weakref.WeakKeyDictionary()


def remember(core: Any, obj: LibbpfObject) -> None:
    """Note that ``core`` is the shared state of ``obj`` (called when ``obj`` opens)."""
    _OBJECTS[core] = weakref.ref(obj)


def object_of(core: Any) -> LibbpfObject | None:
    """The object whose shared state is ``core`` (None once it is gone)."""
    ref = _OBJECTS.get(core)
    return ref() if ref is not None else None
