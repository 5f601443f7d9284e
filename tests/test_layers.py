"""The package's import structure: no import cycles among bench modules, no import up the layers.

The graph is read from the source with :mod:`ast` (nothing is imported). An edge is every
``import bench...`` / ``from bench... import ...`` anywhere in a module, at module level **and
inside functions**: a function-level import only delays a cycle to the first call, it does not
remove it. Also counted: ``importlib.import_module("bench...")`` with a literal name, and the
package ``__init__`` files that importing ``bench.a.b.c`` runs (``bench.a``, ``bench.a.b``) when
the importer lives outside that package (a submodule's own package is already being imported
when the submodule runs, so that edge is no dependency). Not counted: imports under
``if TYPE_CHECKING:`` (they never run) and modules named by configuration data (a codec's TOML
``adapter``), which are plugins, not structure.

Layers are listed low to high in :data:`LAYERS`. They follow the data flow of
../shared/DESIGN.md (configuration → plan → executor → measure → store → analysis → report),
where a stage that *calls* another sits above it (the executor's workers call measure, so measure
is below the executor), above a base every layer may use (errors, device, where third-party
tools live, ...) and the models and codecs, and below the session and the entry points. A module
may import modules of its own layer or lower ones; the layer of a module is that of the longest
prefix listed for it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "bench"

# Low to high. Within a layer imports may go either way (cycles are checked separately).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("bench", "bench.errors", "bench.hashing", "bench.folders", "bench.device", "bench.colour",
              "bench.argparsing", "bench.progress", "bench.download", "bench.machine", "bench.images",
              "bench.third_party", "bench.outfiles", "bench.codeversion", "bench.procenv")),
    ("models", ("bench.models",)),
    ("metrics", ("bench.metrics",)),
    ("codecs", ("bench.codecs",)),
    ("configuration and plan", ("bench.datasets", "bench.cells", "bench.plan")),
    ("measure", ("bench.measure", "bench.memory", "bench.measurecache", "bench.complexity", "bench.crossdecode")),
    ("executor", ("bench.worker", "bench.executors")),
    ("store", ("bench.store", "bench.store_schema", "bench.storelock", "bench.streams")),
    ("analysis", ("bench.analysis", "bench.anchors")),
    ("results view", ("bench.results", "bench.results_rd", "bench.anchor_choice", "bench.lofresults")),
    ("report", ("bench.report", "bench.export", "bench.summary")),
    ("session", ("bench.runner", "bench.session")),
    ("entry points and tools", ("bench.cli", "bench.inventory", "bench.score", "bench.__main__", "bench.gate", "bench.tools", "bench.training",
                                 "bench.lof_run", "bench.decode_scaling")),
]


#: Upward imports not fixed yet, each with what removes it. Empty: the test fails on any upward
#: import. Should one ever be tolerated for a while, it is listed here with what removes it, and an
#: entry that no longer occurs fails too (so the list can only shrink).
KNOWN_UPWARD: dict[str, str] = {}


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` under ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ((isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
                                         or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING"))


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Every dotted name an import in ``tree`` asks for (``from a import b`` gives ``a.b`` and ``a``)."""
    names: list[str] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if _type_checking_only(node):
            stack.extend(node.orelse)  # the else branch runs
            continue
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.extend(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            names.append(node.args[0].value)
        stack.extend(ast.iter_child_nodes(node))
    return names


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module → the bench modules it imports (see the module docstring for what counts)."""
    found = modules(root)
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for wanted in _imported_names(ast.parse(path.read_text(encoding="utf-8"), str(path)), package):
            if wanted.split(".")[0] != "bench":
                continue
            while wanted not in found:  # ``from bench.x import name``: the module bench.x
                wanted = wanted.rpartition(".")[0]
            targets.add(wanted)
            parts = wanted.split(".")
            for i in range(2, len(parts)):  # the package __init__ files the import runs
                parent = ".".join(parts[:i])
                if not (name == parent or name.startswith(parent + ".")):
                    targets.add(parent)
        targets.discard(name)
        targets.discard("bench")  # the empty top package: every import runs it, nothing depends on it
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(found)


def layer_of(module: str) -> int:
    """Index in LAYERS of the longest listed prefix of ``module``."""
    best, best_len = None, -1
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != "bench"  # the top package: itself only
            if (module == prefix or inside) and len(prefix) > best_len:
                best, best_len = rank, len(prefix)
    if best is None:
        raise LookupError(f"{module} is in no layer of LAYERS: add it")
    return best


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a (layer) -> b (higher layer)`` for every import that goes up, sorted."""
    found = []
    for module, targets in graph.items():
        for target in targets:
            if layer_of(target) > layer_of(module):
                found.append(f"{module} ({LAYERS[layer_of(module)][0]}) -> {target} ({LAYERS[layer_of(target)][0]})")
    return sorted(found)


def test_every_module_has_a_layer():
    missing = []
    for module in modules():
        try:
            layer_of(module)
        except LookupError:
            missing.append(module)
    assert not missing, f"modules in no layer: {missing}"


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def unexplained(found: list[str], known: dict[str, str]) -> tuple[list[str], list[str]]:
    """The upward imports ``found`` that ``known`` does not list, and the entries of ``known``
    that no longer occur."""
    return [f for f in found if f not in known], sorted(set(known) - set(found))


def test_no_upward_imports():
    new, gone = unexplained(upward_imports(import_graph()), KNOWN_UPWARD)
    assert not new, "imports that go up the layers:\n" + "\n".join(new)
    assert not gone, "fixed: remove from KNOWN_UPWARD:\n" + "\n".join(gone)


def test_the_model_level_counter_and_the_yardstick_sit_low():
    """The two upward imports this test used to tolerate are gone because the code moved, not
    because the checker went blind: the (function-level) imports that replaced them are edges it
    sees, and their targets sit below their importers."""
    graph = import_graph()
    assert "bench.models.macs" in graph["bench.codecs.learned"]  # inside LearnedCodec.complexity
    assert "bench.device" in graph["bench.tools.decode_parts"]  # inside its matmul yardstick
    assert {"bench.device", "bench.measurecache"} <= graph["bench.complexity"]
    assert not any(t.startswith("bench.models") for t in graph["bench.complexity"])  # the codec's method is asked
    names = dict(LAYERS)
    assert layer_of("bench.models.macs") == list(names).index("models") < layer_of("bench.codecs.learned")
    assert layer_of("bench.device") < layer_of("bench.complexity") < layer_of("bench.tools.decode_parts")


#: The presenters of the report layer: each reads the results view, none imports another.
PRESENTERS = ("bench.report", "bench.export", "bench.summary")


def presenter_imports(graph: dict[str, set[str]]) -> list[str]:
    """``a -> b`` for every import from one presenter (:data:`PRESENTERS`, a package with its
    modules) into another, sorted."""
    def presenter(module: str) -> str | None:
        return next((p for p in PRESENTERS if module == p or module.startswith(p + ".")), None)

    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if presenter(m) and presenter(t) and presenter(m) != presenter(t))


def test_no_presenter_imports_another():
    """``bench export --bd`` once took its anchor choice from the report; the rule is the results
    view's now (bench.anchor_choice), and the presenters stay apart."""
    assert presenter_imports(import_graph()) == []
    assert presenter_imports({"bench.export": {"bench.report.anchoring", "bench.results"},
                              "bench.report.build": {"bench.report.anchoring"}}) == [
        "bench.export -> bench.report.anchoring"]


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "bench" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "bench"


def test_checker_sees_function_level_cycles_and_package_inits(tmp_path):
    """The checks themselves: a cycle through a function-level import and through a package
    ``__init__`` is found; a TYPE_CHECKING import is not an edge."""
    root = _write(tmp_path, {
        "__init__.py": "",
        "store.py": "from bench.metrics.vmaf import x\n",
        "metrics/__init__.py": "from bench.metrics.registry import y\n",
        "metrics/registry.py": "def f():\n    import bench.store\n",
        "metrics/vmaf.py": "x = 1\n",
        "plan.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.store import z\n",
    })
    graph = import_graph(root)
    assert graph["bench.store"] == {"bench.metrics.vmaf", "bench.metrics"}
    assert graph["bench.plan"] == set()
    assert cycles(graph) == [["bench.metrics", "bench.metrics.registry", "bench.store"]]
    assert upward_imports({"bench.models.x": {"bench.cli"}}) == [
        "bench.models.x (models) -> bench.cli (entry points and tools)"]
    # an unlisted upward import is reported; a listed one that no longer occurs is reported too
    up = "bench.models.x (models) -> bench.cli (entry points and tools)"
    assert unexplained([up], {}) == ([up], [])
    assert unexplained([up], {up: "why"}) == ([], [])
    assert unexplained([], {up: "why"}) == ([], [up])


if __name__ == "__main__":  # the report: cycles and upward imports as they are now
    g = import_graph()
    print("cycles:", *[" <-> ".join(c) for c in cycles(g)] or ["none"], sep="\n  ")
    print("upward imports:", *upward_imports(g) or ["none"], sep="\n  ")
