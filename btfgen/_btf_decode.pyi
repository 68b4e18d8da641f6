"""Types of the C extension ``btfgen._btf_decode`` (see _btf_decode.c)."""

from collections.abc import Callable

from btfgen.btf_model import BtfType, Datasec, DeclTag

def configure(plans: tuple[tuple[type, tuple[object, ...]] | None, ...],
              encodings: tuple[object, ...]) -> None: ...
def decode(words: object, start_id: int, names: dict[int, str],
           name_of: Callable[[int, int, int], str]
           ) -> tuple[list[BtfType], list[Datasec | DeclTag]] | None: ...
