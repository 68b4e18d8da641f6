"""Turning untrusted BTF names into safe Python identifiers and literals.

Every name in BTF comes from the object file and may be anything: a Python
keyword, a builtin, a dunder, a name our generated API uses, a duplicate, or
not an identifier at all (quotes, newlines, undecodable bytes).  The rules:

* anything outside ``[A-Za-z0-9_]`` becomes ``_``; a leading digit gets a
  prefix; an empty result becomes a placeholder;
* keywords, builtins, dunders and reserved names get a trailing ``_``;
* names that Python would mangle (``__x`` inside a class) lose the leading
  underscores and get a trailing ``_``;
* duplicates get deterministic suffixes ``_2``, ``_3`` ... in order of
  appearance (:class:`UniqueNames`).

C names that appear in generated string literals or docstrings go through
:func:`py_str` / :func:`doc_text` / :func:`shown`, which escape everything
non-printable.
"""

from __future__ import annotations

import builtins
import json
import keyword
import os
import re

_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")

#: Builtin names (``int``, ``type``, ``list`` ...): shadowing them in a
#: generated class body would break later annotations.
BUILTINS = frozenset(dir(builtins))

#: Module-level names every generated module defines or imports.
MODULE_NAMES = frozenset({
    "annotations", "struct", "dataclass", "field", "ClassVar", "Enum", "IntEnum", "FFI", "ffi",
    "TYPES", "Buffer", "Any", "_Factory",
})

#: Names pycodestyle calls ambiguous (E741/E742).
AMBIGUOUS = frozenset({"l", "O", "I"})

#: Attributes of generated record classes that fields must not shadow.
RECORD_API = frozenset({"SIZE", "from_bytes", "to_bytes", "_raw"})

#: Attributes of IntEnum members/classes that enumerators must not shadow.
#: ``SIZE`` too: a class with ``SIZE`` and ``from_bytes`` (which int has) is
#: taken for a record class (``runtime.protocols.as_codec``, the fuzz worker).
ENUM_API = frozenset(dir(int)) | frozenset({"name", "value", "mro", "SIZE"})


def sanitize(name: str, placeholder: str = "_") -> str:
    """``name`` with every character outside ``[A-Za-z0-9_]`` replaced by ``_``
    and a leading digit prefixed, so the result is an ASCII identifier."""
    s = _NOT_IDENT.sub("_", name)
    if not s:
        return placeholder
    if s[0].isdigit():
        s = "_" + s
    return s


def is_dunder(name: str) -> bool:
    """``__x__``-style names."""
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def attr_name(name: str, reserved: frozenset[str] | set[str] = frozenset()) -> str:
    """A safe attribute/field name for the C member or variable ``name``."""
    s = sanitize(name)
    if s.startswith("__") and not is_dunder(s):
        s = s.lstrip("_") + "_"
        if s == "_":
            s = "_x_"
        elif s[0].isdigit():  # ``__0``: one underscore keeps it an identifier, unmangled
            s = "_" + s
    if (keyword.iskeyword(s) or keyword.issoftkeyword(s) or s in BUILTINS or is_dunder(s)
            or s in reserved or s in MODULE_NAMES or s in RECORD_API or s in AMBIGUOUS):
        s += "_"
    return s


def enum_member_name(name: str) -> str:
    """A safe IntEnum member name (no leading underscore: Enum reserves
    ``_sunder_`` names and mangles ``__private`` ones)."""
    s = sanitize(name)
    if s.startswith("_"):
        s = s.lstrip("_") + "_"
        if s == "_":
            s = "V_"
        if s[0].isdigit():
            s = "V" + s
    if keyword.iskeyword(s) or s in BUILTINS or s in ENUM_API or s in AMBIGUOUS:
        s += "_"
    return s


def camel(name: str) -> str:
    """``data_t`` -> ``DataT``, ``__sk_buff`` -> ``SkBuff``; always starts with a
    capital letter (``T`` prefix if it would not)."""
    parts = [p for p in sanitize(name).split("_") if p]
    s = "".join(p[0].upper() + p[1:] for p in parts)
    if not s or not s[0].isalpha():
        s = "T" + s
    return s


def class_name(name: str) -> str:
    """A safe module-level class name derived from the C name ``name``."""
    s = camel(name)
    if keyword.iskeyword(s) or s in BUILTINS or s in MODULE_NAMES or s in AMBIGUOUS:
        s += "_"
    return s


class UniqueNames:
    """Hands out names unique within one namespace, deterministically: the
    first ``Foo`` stays ``Foo``, later ones become ``Foo_2``, ``Foo_3`` ..."""

    def __init__(self, taken: set[str] | frozenset[str] = frozenset()) -> None:
        self._taken: set[str] = set(taken)

    def __contains__(self, name: str) -> bool:
        return name in self._taken

    def add(self, name: str) -> str:
        """Reserve ``name`` (or the first free suffixed variant) and return it."""
        if name not in self._taken:
            self._taken.add(name)
            return name
        n = 2
        while f"{name}_{n}" in self._taken:
            n += 1
        unique = f"{name}_{n}"
        self._taken.add(unique)
        return unique


def py_str(s: str) -> str:
    """A double-quoted, ASCII-only Python string literal for ``s`` (any
    content, including lone surrogates from undecodable bytes)."""
    return json.dumps(s, ensure_ascii=True)


def shown(s: str) -> str:
    """``s`` as printable ASCII inside a generated module's docstrings: quotes,
    backslashes, control characters, non-ASCII and lone surrogates become
    ``\\uXXXX``-style escapes (the text of :func:`py_str` without its quotes).
    Messages to people escape with :func:`btfgen.errors.show` instead."""
    return py_str(s)[1:-1]


def doc_text(s: str) -> str:
    """``s`` escaped for use inside a (non-raw) triple-quoted docstring.

    The docstring's value is ``s`` itself, except that bytes which were not
    UTF-8 (lone surrogates from surrogateescape) read as the text ``\\xNN``: a
    class whose ``__doc__`` holds a lone surrogate cannot be created."""
    text = "".join(f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF
                   else f"\\u{ord(ch):04x}" if 0xD800 <= ord(ch) <= 0xDFFF else ch for ch in s)
    return py_str(text)[1:-1]


def c_identifier(name: str) -> bool:
    """Whether ``name`` is usable as-is as a C identifier in a cffi cdef."""
    return bool(name) and not _NOT_IDENT.search(name) and not name[0].isdigit()


def stem_of(path: str) -> str:
    """``probe.bpf.o`` -> ``probe``; ``x.o`` -> ``x``; ``vmlinux`` -> ``vmlinux``."""
    base = os.path.basename(path)
    for suffix in (".bpf.o", ".o"):
        if base.endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return base
