"""The package's layers: every import points down, and no module imports one that imports it
back; bench/ (over the package) has no import circle either.

From the bottom: ``_compat`` and ``_config``; the generic math ``_core``; the
backends ``_backends`` and, beside them, the argument checks of the boundary
``_arguments``; the public functional API and the observer classes,
side by side; the command line, the conformance corpus and ``testing`` on top.
A module below the top may import from lower layers and from its own
package, never from above or from a neighbour of its layer.
"""

from __future__ import annotations

import ast
import pathlib

import arrayobs

ROOT = pathlib.Path(arrayobs.__file__).parent
LAYERS = {
    "arrayobs._compat": 0,
    "arrayobs._config": 0,
    "arrayobs._core": 1,
    "arrayobs._backends": 2,
    "arrayobs._arguments": 2,  # the boundary's checks: over the math, beside the backends
    "arrayobs.functional": 3,
    "arrayobs._observers": 3,
    "arrayobs": 4,  # __init__, __main__, cli, _cli_compare, _conformance, testing
}


def _module(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """The layer entry a module belongs to: the longest key of LAYERS that prefixes it."""
    keys = [k for k in LAYERS if module == k or module.startswith(k + ".")]
    unit = max(keys, key=len)
    # On the top layer every subpackage and module is a unit of its own.
    return ".".join(module.split(".")[:2]) if unit == "arrayobs" else unit


def _imports(
    path: pathlib.Path, module: str, modules: dict[str, pathlib.Path] | None = None
) -> set[str]:
    """Every module of ``modules`` (default: arrayobs's) that ``path`` imports, at any
    depth of its code (the imports inside functions too: those are the lazy ones)."""
    modules = MODULES if modules is None else modules
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # ``from package import submodule`` depends on the submodule alone.
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in modules else base)
    return {m for m in found if m in modules}


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}
GRAPH = {m: _imports(p, m) - {m} for m, p in MODULES.items()}


def test_every_import_points_down() -> None:
    wrong = []
    for module, imported in GRAPH.items():
        mine = _unit(module)
        if LAYERS[_layer_key(mine)] == max(LAYERS.values()):
            continue  # the top: the application, over everything (cycles: below)
        for other in imported:
            theirs = _unit(other)
            if mine != theirs and LAYERS[_layer_key(theirs)] >= LAYERS[_layer_key(mine)]:
                wrong.append(f"{module} (layer {mine}) imports {other} (layer {theirs})")
    assert not wrong, "\n".join(sorted(wrong))


def _layer_key(unit: str) -> str:
    return unit if unit in LAYERS else "arrayobs"


BENCH_ROOT = ROOT.parent.parent / "bench"
BENCH_MODULES = {
    ".".join(p.relative_to(BENCH_ROOT.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in BENCH_ROOT.rglob("*.py")
}
BENCH_GRAPH = {m: _imports(p, m, BENCH_MODULES) - {m} for m, p in BENCH_MODULES.items()}


def _assert_acyclic(graph: dict[str, set[str]]) -> None:
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if state.get(other) == 1:
                cycle = [*path[path.index(other) :], other] if other in path else [module, other]
                raise AssertionError(" -> ".join(cycle))
            if other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_no_import_cycles() -> None:
    _assert_acyclic(GRAPH)


def test_no_import_cycles_in_bench() -> None:
    _assert_acyclic(BENCH_GRAPH)


def test_the_graph_is_read() -> None:
    """The checks above see the imports they are about (not an empty graph)."""
    assert "arrayobs._core" in GRAPH["arrayobs._backends._numpy"]
    assert "arrayobs._backends" in GRAPH["arrayobs.functional"]
    assert "arrayobs._backends._numpy" in GRAPH["arrayobs._backends"]
    assert "bench.tables" in BENCH_GRAPH["bench.report"]
    assert "bench.cases" in BENCH_GRAPH["bench.affine"]
