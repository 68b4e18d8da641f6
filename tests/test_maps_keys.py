"""Struct keys read from maps are frozen snapshots: hashable and ordered by value."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from types import ModuleType

import pytest

from btfgen.runtime.codec import RecordCodec, frozen_record
from tests.helpers.maps_zoo import build


@pytest.fixture(scope="module")
def mod() -> ModuleType:
    return build()


def test_frozen_key_is_the_record_class_hashable_and_ordered(mod: ModuleType) -> None:
    Key = mod.Key
    codec = RecordCodec(Key)
    plain = Key(pid=3, bucket=1, tag=b"b1")
    key = codec.decode_key(plain.to_bytes())
    assert isinstance(key, Key) and type(key) is not Key and repr(key) == repr(plain)
    assert key == plain and plain == key and hash(key) == hash(codec.decode_key(
        plain.to_bytes()))
    with pytest.raises(TypeError):
        hash(plain)  # generated records stay mutable and unhashable
    other = dataclasses.replace(key, pid=1)
    assert type(other) is type(key) and other.pid == 1 and key.pid == 3
    assert sorted([key, other, frozen_record(Key(pid=2))]) == [other, Key(pid=2), key]
    assert {key: "a", other: "b"}[frozen_record(Key(pid=3, bucket=1, tag=b"b1"))] == "a"
    assert codec.encode(key) == plain.to_bytes()
    for clone in (copy.copy(key), copy.deepcopy(key), pickle.loads(pickle.dumps(key))):
        assert clone == key and hash(clone) == hash(key) and type(clone) is type(key)
    with pytest.raises(AttributeError, match="frozen snapshots"):
        key.pid = 4
    with pytest.raises(AttributeError, match="frozen snapshots"):
        del key.pid
    assert key.pid == 3


def test_non_dataclass_records_decode_as_they_are() -> None:
    class Raw:
        SIZE = 2

        def __init__(self, b: bytes) -> None:
            self.b = b

        @classmethod
        def from_bytes(cls, buf: bytes, offset: int = 0) -> Raw:
            return cls(bytes(buf[offset:offset + 2]))

        def to_bytes(self) -> bytes:
            return self.b

    key = RecordCodec(Raw).decode_key(b"xy")
    assert type(key) is Raw and key.b == b"xy"
