"""One import direction: lower layers never import higher ones, and no module imports form a cycle.

Every import counts, function-level ones included: a lazy import is still a dependency. The
layers, lowest first (see docs/architecture.md):
errors/options/_version -> ops -> io -> models -> diffusion, upscalers, detectors -> stages ->
presets, recipes, batch, enhance -> api -> cli, server, ui -> testing and the package root.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sdenhance

PACKAGE = Path(sdenhance.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("sdenhance._version", "sdenhance.errors", "sdenhance.options"),
    ("sdenhance.ops",),
    ("sdenhance.io",),
    ("sdenhance.models",),
    ("sdenhance.diffusion", "sdenhance.upscalers", "sdenhance.detectors"),
    ("sdenhance.stages",),
    (
        "sdenhance.presets",
        "sdenhance.recipes",
        "sdenhance.recipe_values",
        "sdenhance.rerun",
        "sdenhance.batch",
        "sdenhance.batch_naming",
        "sdenhance.enhance",
    ),
    ("sdenhance.api",),
    ("sdenhance.cli", "sdenhance.server", "sdenhance.ui"),
    ("sdenhance.testing", "sdenhance.__main__", "sdenhance"),
]
# libraries a layer may not import, at any depth of a function
FORBIDDEN = {"sdenhance.ops": ("torch", "diffusers", "transformers")}


def layer_of(module: str) -> int:
    """Index of the most specific layer prefix that `module` falls under."""
    best, best_len = None, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise AssertionError(f"module {module} is in no layer: add it to LAYERS")
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> set:
    """Absolute names of every module `path` imports, anywhere in the file; each `from X import`
    also yields `(X, {X.name, ...})` so the caller can tell modules from names."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from pkg import submodule` depends on the submodule, not on the package's __init__
            subs = {f"{target}.{alias.name}" for alias in node.names}
            found.update(subs)
            found.add((target, frozenset(subs)))  # type: ignore[arg-type]
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the package modules it imports (names that are not modules are dropped)."""
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(p, root): p for p in paths}
    graph: dict[str, set[str]] = {}
    for mod, path in modules.items():
        deps: set[str] = set()
        for item in imports_of(path, root):
            if isinstance(item, tuple):  # the `from` target: a module unless all names were
                target, subs = item
                if not (subs & modules.keys()):
                    deps.add(target)
            else:
                deps.add(item)
        graph[mod] = {t for t in deps if t in modules and t != mod}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})"
        for mod, deps in sorted(graph.items())
        for dep in sorted(deps)
        if layer_of(dep) > layer_of(mod)
    ]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None (iterative DFS, three colours)."""
    colour = dict.fromkeys(graph, 0)
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child, 2) == 1:
                return path[path.index(child) :] + [child]
            elif colour.get(child) == 0:
                colour[child] = 1
                path.append(child)
                stack.append((child, iter(sorted(graph[child]))))
    return None


def test_every_import_points_down_the_layers():
    assert upward_imports(import_graph(PACKAGE)) == []


def test_no_import_cycles():
    graph = import_graph(PACKAGE)
    # the package root re-exports the API; its submodules import it only for __version__ (none now)
    assert find_cycle({m: d - {"sdenhance"} for m, d in graph.items()}) is None


def test_ops_import_no_torch():
    for path in sorted((PACKAGE / "ops").rglob("*.py")):
        for prefix, banned in FORBIDDEN.items():
            hits = {
                name
                for name in imports_of(path, PACKAGE)
                if isinstance(name, str) and name.split(".")[0] in banned and prefix.endswith("ops")
            }
            assert not hits, f"{path.name} imports {hits}"


def test_checker_finds_a_planted_cycle_and_upward_import(tmp_path):
    root = tmp_path / "sdenhance"
    (root / "ops").mkdir(parents=True)
    (root / "stages").mkdir()
    (root / "__init__.py").write_text("")
    (root / "errors.py").write_text("")
    (root / "ops" / "__init__.py").write_text("")
    (root / "ops" / "a.py").write_text("def f():\n    from sdenhance.ops import b\n")
    (root / "ops" / "b.py").write_text("from .a import f\n")
    (root / "stages" / "__init__.py").write_text("")
    (root / "ops" / "c.py").write_text("def g():\n    from ..stages import x\n")
    (root / "stages" / "x.py").write_text("import torch\n")
    graph = import_graph(root)
    cycle = find_cycle(graph)
    assert cycle is not None and set(cycle) == {"sdenhance.ops.a", "sdenhance.ops.b"}
    assert upward_imports(graph) == [
        "sdenhance.ops.c (layer 1) imports sdenhance.stages.x (layer 5)"
    ]


@pytest.mark.parametrize("module", ["sdenhance.ops.tiling", "sdenhance.io.load", "sdenhance.api"])
def test_layer_of_known_modules(module):
    expected = {"sdenhance.ops.tiling": 1, "sdenhance.io.load": 2, "sdenhance.api": 7}[module]
    assert layer_of(module) == expected
