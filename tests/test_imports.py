"""The package's import graph: no cycles, and the physics layer (hotham.electronic) below the model layer.

Every ``import`` and ``from ... import`` of every module of hotham/, parsers/ and workflows/ is read
with :mod:`ast`, module-level and inside functions alike (a function-level import closes a loop as
surely as a module-level one; it only hides it until the call), and mapped to the package's module
names. parsers/ and workflows/ are installed as ``hotham.parsers`` and ``hotham.workflows``.
"""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
#: source folder -> the dotted name it is installed as
PACKAGES = {"hotham": "hotham", "parsers": "hotham.parsers", "workflows": "hotham.workflows"}
#: the model layer: what hotham.electronic (physics from given blocks) must never import
MODEL_LAYER = ("hotham.nn", "hotham.prediction", "hotham.train", "hotham.checkpoint", "hotham.evaluation",
               "hotham.baseline", "hotham.band_loss", "hotham.dataset", "hotham.training_graphs",
               "hotham.demo", "hotham.recipes", "hotham.cli")


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    mods = {}
    for folder, dotted in PACKAGES.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            parts = list(f.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([dotted, *parts])] = f
    return mods


def _resolve(name: str, mods) -> str | None:
    """The package module ``name`` is, or lies in (``hotham.x.y`` of a function ``y``: ``hotham.x``)."""
    if name.startswith(("parsers", "workflows")):
        name = "hotham." + name
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (the package's own ``__init__`` only when named)."""
    mods = _modules()
    graph = {}
    for mod, f in mods.items():
        package = mod if f.name == "__init__.py" else mod.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module
                # "from . import x" / "from .a import b": the submodule when there is one
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            else:
                continue
            for n in names:
                target = _resolve(n, mods)
                if target is not None and target != mod:
                    deps.add(target)
        graph[mod] = deps
    return graph


def _cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _without_packages(graph):
    """The graph with package ``__init__`` modules' re-exports left out: importing ``hotham.x.y``
    runs ``hotham/x/__init__.py`` first, but a package that re-exports its submodules is not a
    module those submodules depend on; an edge *into* a package __init__ stays (it is a real import)."""
    mods = _modules()
    inits = {m for m, f in mods.items() if f.name == "__init__.py"}
    return {m: (d if m not in inits else {x for x in d if not x.startswith(m + ".")}) for m, d in graph.items()}


def test_the_walk_sees_module_and_function_level_imports():
    graph = import_graph()
    assert "hotham.operator" in graph["hotham.electronic.hk"]                 # module level
    assert "hotham.checkpoint" in graph["hotham.prediction"]                  # inside predict()
    assert "hotham.parsers.openmx" in graph["hotham.io"] or any(d.startswith("hotham.parsers") for d in graph["hotham.io"])


def test_no_import_cycles():
    cycles = _cycles(_without_packages(import_graph()))
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_a_cycle_is_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_electronic_does_not_import_the_model_layer():
    bad = sorted(f"{m} -> {d}" for m, deps in import_graph().items() if m.startswith("hotham.electronic")
                 for d in deps if d.startswith(MODEL_LAYER))
    assert not bad, "the physics layer imports the model layer:\n" + "\n".join(bad)
