"""Turning what callers pass (codecs, record classes, sizes) into codecs.

Codecs themselves live in :mod:`btfgen.runtime.codec`.
"""

from __future__ import annotations

from typing import Any

from btfgen.runtime.codec import Buffer, Codec, RawCodec, RecordCodec

__all__ = ["Buffer", "Codec", "RawCodec", "RecordCodec", "as_codec"]


def as_codec(x: Any) -> Codec[Any]:
    """A codec for ``x``: a codec itself, a record class, or an int size (raw bytes)."""
    if isinstance(x, Codec):
        return x
    if isinstance(x, int):
        return RawCodec(x)
    if isinstance(x, type) and hasattr(x, "from_bytes") and hasattr(x, "SIZE"):
        return RecordCodec(x)
    raise TypeError(f"not a codec or record class: {x!r}")
