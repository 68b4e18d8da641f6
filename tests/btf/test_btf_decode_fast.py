"""The compiled decoder (``btfgen._btf_decode``) builds exactly the model of
btf_parse's reference loop, and declines whatever that loop rejects, so that
the reference loop reports it: on the libbpf-tools corpus, objects compiled
here (every kind, both byte orders), vmlinux, split BTF and thousands of
mutants."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from btfgen import btf_decode_fast, btf_parse
from btfgen.btf_model import Btf
from btfgen.errors import BtfError
from tests.helpers.btf_builder import BtfBuilder
from tests.helpers.build import DATA, compile_bpf
from tests.helpers.mutate import Seed, mutate

VMLINUX = Path("/sys/kernel/btf/vmlinux")
MUTANTS = 3000


class Decoders:
    """Parses with the compiled decoder or with the reference loop only, and
    counts what the compiled decoder decided."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = btf_decode_fast.decode
        self.use_fast = True
        self.decoded = self.declined = 0
        monkeypatch.setattr(btf_decode_fast, "decode", self._decode)

    def _decode(self, *args: object) -> object:
        if not self.use_fast:
            return None
        got = self.real(*args)  # type: ignore[arg-type]
        if got is None:
            self.declined += 1
        else:
            self.decoded += 1
        return got

    def parse(self, data: bytes, *, fast: bool, base: Btf | None = None) -> Btf | str:
        """The model, or the error message."""
        self.use_fast = fast
        try:
            return btf_parse.parse_btf(data, base)
        except BtfError as e:
            return f"BtfError: {e}"

    def same(self, data: bytes, base: Btf | None = None) -> bool:
        """Do both decoders give the same model, or the same error?"""
        fast = self.parse(data, fast=True, base=base)
        ref = self.parse(data, fast=False, base=base)
        if isinstance(fast, str) or isinstance(ref, str):
            return fast == ref
        return (fast.types == ref.types and fast.type_count == ref.type_count
                and all(type(a) is type(b) for a, b in zip(fast.types, ref.types, strict=True)))


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> Decoders:
    return Decoders(monkeypatch)


def btf_blob(path: Path) -> bytes:
    seed = Seed.from_bytes(path.read_bytes())
    return seed.data[seed.btf_off:seed.btf_off + seed.btf_size]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """tests/data/kinds.bpf.c (every kind) by clang 14 and 19, both byte orders."""
    out = tmp_path_factory.mktemp("kinds")
    src = (DATA / "kinds.bpf.c").read_text()
    return [compile_bpf(src, out / f"kinds-{cc}-{t}.bpf.o", clang=cc, target=t)
            for cc in ("clang", "clang-19") for t in ("bpf", "bpfeb")]


def test_extension_is_built() -> None:
    assert btf_decode_fast.AVAILABLE, "btfgen._btf_decode was not built"


def test_same_model_on_real_objects(decoders: Decoders, corpus_objects: list[Path],
                                    compiled: list[Path]) -> None:
    paths = corpus_objects + compiled
    differ = [p.name for p in paths if not decoders.same(btf_blob(p))]
    assert differ == []
    assert decoders.decoded == len(paths) and decoders.declined == 0


def test_same_model_on_vmlinux(decoders: Decoders) -> None:
    if not VMLINUX.exists():
        pytest.skip("kernel has no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF off)")
    assert decoders.same(VMLINUX.read_bytes())
    assert decoders.decoded == 1


def _split(*, func_on_base_proto: bool) -> tuple[BtfBuilder, BtfBuilder]:
    base = BtfBuilder()
    i = base.int_("int", 4, signed=True)
    proto = base.func_proto(i, [("x", i)])
    base.struct("base_s", 8, [("a", i, 0), ("b", i, 32)])
    split = BtfBuilder(base=base)
    p = split.ptr(i)
    split.struct("mod_s", 16, [("p", p, 0), ("n", i, 64), ("bits", i, 96, 3)], kflag=True)
    split.typedef("mod_t", p)
    if func_on_base_proto:  # the compiled decoder leaves this case to the reference loop
        split.func("uses_base_proto", proto)
    split.func("uses_own_proto", split.func_proto(p, [("a", i), ("", p)]))
    return base, split


@pytest.mark.parametrize("order", ["little", "big"])
@pytest.mark.parametrize("func_on_base_proto", [False, True])
def test_same_model_on_split_btf(decoders: Decoders, order: str,
                                 func_on_base_proto: bool) -> None:
    base_b, split_b = _split(func_on_base_proto=func_on_base_proto)
    base = btf_parse.parse_btf(base_b.build(order))
    decoders.decoded = 0  # the base's own parse
    assert decoders.same(split_b.build(order), base)
    assert (decoders.decoded, decoders.declined) == ((0, 1) if func_on_base_proto else (1, 0))


def _seeds(corpus_objects: list[Path], compiled: list[Path]) -> Iterator[Seed]:
    for path in compiled + corpus_objects[::6]:
        yield Seed.from_bytes(btf_blob(path))


@pytest.mark.slow
def test_same_outcome_on_mutants(decoders: Decoders, corpus_objects: list[Path],
                                 compiled: list[Path]) -> None:
    rng = random.Random(11)
    seeds = list(_seeds(corpus_objects, compiled))
    differ = []
    for n in range(MUTANTS):
        data, what = mutate(seeds[n % len(seeds)], rng)
        if not decoders.same(data):
            differ.append(what)
    assert differ == []
    # Both sides of the decoder are exercised: mutants it decodes, and mutants it declines.
    assert decoders.decoded > MUTANTS // 10
    assert decoders.declined > MUTANTS // 10
