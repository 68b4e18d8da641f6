"""btfgen's imports, read from the source (ast): no cycles, no upward imports.

Layers, lowest first; a module imports only from its own layer or lower ones:

0. foundation: ``errors``, ``version`` (and ``runtime.map_types``, numbers
   the generator shares with the runtime, and ``runtime.cffi_sizes``, the cffi
   sizing rule both use);
1. BTF model: ``btf_*``;
2. the object: ``elf/``;
3. record types found in it: ``discovery/``;
4. selected types and the rendered module: ``gen/``;
5. front ends: ``dump/``, ``project/``, ``cli``, ``__main__``, ``btfgen`` itself.

The runtime (``runtime/``) imports nothing of btfgen outside ``btfgen.runtime``.
Every import counts, also those inside functions: a function-level import hides
a cycle from Python, not from the design.  Imports under ``if TYPE_CHECKING:``
do not: they name types for annotations and never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import btfgen

PACKAGE = Path(btfgen.__file__).resolve().parent

LAYERS: list[tuple[str, ...]] = [
    ("btfgen.errors", "btfgen.version", "btfgen.runtime.map_types",
     "btfgen.runtime.cffi_sizes"),
    ("btfgen.btf_", "btfgen._btf_decode"),
    ("btfgen.elf",),
    ("btfgen.discovery",),
    ("btfgen.gen",),
    ("btfgen.dump", "btfgen.project", "btfgen.cli", "btfgen.__main__", "btfgen"),
]


#: Front ends that report on the installed runtime itself (``btfgen doctor`` and
#: ``--version``: libbpf's version, tracefs, compiled parts): they may import it.
RUNTIME_REPORTERS = ("btfgen.doctor",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str, modules: set[str]) -> set[str]:
    """The btfgen modules ``path`` imports (``from btfgen.x import y`` counts as
    ``btfgen.x.y`` when that is a module, else ``btfgen.x``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m == "btfgen" or m.startswith("btfgen.")}


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` outside ``if TYPE_CHECKING:`` blocks."""
    out: list[ast.AST] = []
    work = [tree]
    while work:
        node = work.pop()
        out.append(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                work.extend(child.orelse)
                continue
            work.append(child)
    return out


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    # compiled parts (btfgen._btf_decode, btfgen.runtime._records ...) are modules too
    modules = set(paths) | {module_name(p) for p in PACKAGE.rglob("*.c")}
    return {name: {m for m in imports_of(p, name, modules) if m in modules and m != name}
            for name, p in paths.items()}


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None  # (length of the matching prefix, layer)
    for level, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix if prefix.endswith("_")
                                                     else prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), level)
    return None if best is None else best[1]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state:
                found = visit(n)
                if found:
                    return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_graph_sees_the_packages() -> None:
    graph = import_graph()
    assert {"btfgen.gen.module", "btfgen.elf.reader", "btfgen.runtime.skeleton",
            "btfgen.btf_parse", "btfgen.discovery.resolve"} <= set(graph)
    assert "btfgen.gen.skeleton" in graph["btfgen.gen.module"]
    assert "btfgen.btf_model" in graph["btfgen.elf.model"]


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_no_upward_imports_across_layers() -> None:
    upward = []
    shared = {p for p in LAYERS[0] if p.startswith("btfgen.runtime")}
    for m, deps in import_graph().items():
        if m.startswith("btfgen.runtime") and m not in shared:
            continue
        own = layer_of(m)
        assert own is not None, f"{m} is in no layer: add it to LAYERS"
        for d in deps:
            if (d.startswith("btfgen.runtime") and d not in shared
                    and m not in RUNTIME_REPORTERS):
                upward.append(f"{m} -> {d} (the generator uses the runtime only as text)")
                continue
            theirs = layer_of(d)
            if theirs is not None and theirs > own:
                upward.append(f"{m} (layer {own}) -> {d} (layer {theirs})")
    assert upward == []


def test_runtime_imports_nothing_of_the_generator() -> None:
    outside = [f"{m} -> {d}" for m, deps in import_graph().items()
               if m.startswith("btfgen.runtime") for d in deps
               if not d.startswith("btfgen.runtime")]
    assert outside == []
