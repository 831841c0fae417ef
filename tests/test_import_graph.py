"""The package's import structure: no cycles, no private names across modules, one-way layers.

Every module of the installed package (``pnp``, ``pnp.priors``, ``pnp.operators``,
``pnp.solvers``, ``pnp.models``) is parsed with ``ast`` (nothing is executed), and each
``import pnp.x`` / ``from pnp.x import y`` becomes an edge, at module level or inside a
function alike. The run layer is built bottom-up, each layer importing only those below it:

1. foundation: files, metrics, seeding, records, protocol, config checks, registries,
   problem components (``pnp.io``, ``pnp.metrics``, ``pnp.seeding``, ``pnp.records``,
   ``pnp.protocol``, ``pnp.registry``, ``pnp.validate``, ``pnp.prior``, ``pnp.solver``,
   ``pnp.operator``, ``pnp.monitor``, the priors, operators, solvers and models ...): every
   module not named below;
2. problem: ``pnp.problem`` (operator, noise, observation);
3. run: ``pnp.runner`` (build the prior and solver, solve one problem, restore one image);
4. suite: ``pnp.benchmark`` (suites and image folders, batched and resumable);
5. report: ``pnp.report_html``, ``pnp.report`` (read result folders, write tables and pages);
6. job: ``pnp.job`` (one configuration: its image with its page, or its suite, after the checks);
7. sweep: ``pnp.sweep`` (one job of a multirun; the end-of-sweep report);
8. entry points: ``pnp.api`` (Python) and ``pnp.__main__`` (command line), neither importing
   the other; ``pnp`` itself re-exports the API.

The report reads result folders only: it imports nothing of layers 2-4. Inside functions, the
run layer imports only what loads on purpose later (``DEFERRED``: start-up time).
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

PACKAGES = ("pnp", "pnp.priors", "pnp.operators", "pnp.solvers", "pnp.models")
LAYERS = [  # bottom-up; a module may import its own layer (without a cycle) and those below
    ("problem", {"pnp.problem"}),
    ("run", {"pnp.runner"}),
    ("suite", {"pnp.benchmark"}),
    ("report", {"pnp.report_html", "pnp.report"}),
    ("job", {"pnp.job"}),
    ("sweep", {"pnp.sweep"}),
    ("entry", {"pnp.api", "pnp.__main__"}),
]
TOP = {"pnp"}  # the package itself: ``from pnp import restore``
RUN_MACHINERY = {"pnp.problem", "pnp.runner", "pnp.benchmark", "pnp.job"}
# Modules whose pnp imports are all at module level, but for DEFERRED: the layers above and the
# modules they share, and the training and tuning tools.
MODULE_LEVEL_ONLY = {m for _, members in LAYERS for m in members} | {
    "pnp.records", "pnp.protocol", "pnp.seeding", "pnp.choices", "pnp.train", "pnp.tune"}
DEFERRED = {  # (module, what it imports inside a function): why
    ("pnp.__main__", "pnp.job"): "--help and one-line errors answer before torch's networks and deepinv load",
    ("pnp.__main__", "pnp.sweep"): "the same",
    ("pnp.api", "pnp.runner"): "import pnp (so python -m pnp --help) does not load deepinv",
}


def package_modules() -> dict[str, Path]:
    """{module name: file} of every module of the installed package."""
    modules = {}
    for package in PACKAGES:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
        for folder in spec.submodule_search_locations:
            for path in sorted(Path(folder).glob("*.py")):
                modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _in_functions(tree: ast.AST) -> set[int]:
    """The line numbers of the import statements inside a function."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            lines |= {n.lineno for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def imports(modules: dict[str, Path], nested: bool | None = None) -> dict[str, list[tuple[str, str | None, int]]]:
    """{module: [(imported pnp module, imported name or None, line)]}: every ``import`` of the
    package in each module's source, anywhere in it (``nested``: only those inside a function,
    False: only the others); a name that is a module counts as one."""
    found: dict[str, list] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        inner = _in_functions(tree)
        edges = []
        for node in ast.walk(tree):
            if nested is not None and isinstance(node, (ast.Import, ast.ImportFrom)) and \
                    (node.lineno in inner) != nested:
                continue
            if isinstance(node, ast.Import):
                edges += [(a.name, None, node.lineno) for a in node.names if a.name.split(".")[0] == "pnp"]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the module's own package
                    parts = _package_of(module, path).split(".")
                    parts = parts[:len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([base] if base else []))
                if base.split(".")[0] != "pnp":
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    edges.append((sub, None, node.lineno) if sub in modules else (base, alias.name, node.lineno))
        found[module] = edges
    return found


@pytest.fixture(scope="module")
def graph():
    modules = package_modules()
    return modules, imports(modules)


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_finds_every_package_module(graph):
    modules, edges = graph
    for name in ("pnp.runner", "pnp.benchmark", "pnp.sweep", "pnp.report", "pnp.api", "pnp.__main__",
                 "pnp.priors.tv", "pnp.operators.blur", "pnp.solvers.gd", "pnp.models.ffdnet"):
        assert name in modules
    assert ("pnp.errors", "PnPError") in {(m, n) for m, n, _ in edges["pnp.runner"]}


def test_cycle_finder_reports_the_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_no_import_cycles(graph):
    modules, found = graph
    edges = {m: {t for t, _, _ in found[m] if t in modules and t != m and t not in TOP} for m in modules}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_private_names_across_modules(graph):
    modules, found = graph
    bad = []
    for module, edges in found.items():
        for target, name, line in edges:
            if target == module:
                continue
            if name is not None and _private(name):
                bad.append(f"{modules[module].name}:{line}: {name} from {target}")
            own = _package_of(module, modules[module])
            if name is None and _private(target.rpartition(".")[2]) and target.rpartition(".")[0] != own:
                bad.append(f"{modules[module].name}:{line}: module {target} outside its package")
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


def test_layers_import_only_downwards(graph):
    modules, found = graph
    layer_of = {m: i + 1 for i, (_, members) in enumerate(LAYERS) for m in members}
    for members in (members for _, members in LAYERS):
        missing = members - set(modules)
        assert not missing, f"layer modules not in the package: {missing}"
    bad = []
    for module, edges in found.items():
        if module in TOP:
            continue
        mine = layer_of.get(module, 0)
        for target, _, line in edges:
            if layer_of.get(target, 0) > mine:
                names = {i + 1: n for i, (n, _) in enumerate(LAYERS)}
                bad.append(f"{modules[module].name}:{line}: {module} ({names.get(mine, 'foundation')}) imports "
                           f"{target} ({names[layer_of[target]]}), a layer above it")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_entry_points_and_report_stay_apart(graph):
    _, found = graph
    targets = {m: {t for t, _, _ in edges} for m, edges in found.items()}
    assert "pnp.__main__" not in targets["pnp.api"], "the Python API imports the command line"
    assert "pnp.api" not in targets["pnp.__main__"], "the command line imports the Python API"
    for module in ("pnp.report", "pnp.report_html"):
        assert not targets[module] & RUN_MACHINERY, f"{module} imports {targets[module] & RUN_MACHINERY}"


def test_run_layer_imports_at_module_level(graph):
    modules, _ = graph
    inner = imports({m: p for m, p in modules.items() if m in MODULE_LEVEL_ONLY}, nested=True)
    bad = [f"{modules[m].name}:{line}: {target}" for m, edges in inner.items() for target, _, line in edges
           if (m, target) not in DEFERRED]
    assert not bad, "pnp imports inside functions (import them at the top, or list them in DEFERRED " \
                    "with the reason):\n" + "\n".join(bad)


def test_checks_fail_on_a_bad_graph(tmp_path):
    """The parser sees imports inside functions, relative imports and private names."""
    (tmp_path / "a.py").write_text("def f():\n    from pnp.runner import _plain\n")
    (tmp_path / "b.py").write_text("from . import runner\nimport pnp.benchmark\n")
    mods = {"pnp.a": tmp_path / "a.py", "pnp.b": tmp_path / "b.py", "pnp.runner": tmp_path / "b.py",
            "pnp.benchmark": tmp_path / "b.py"}
    found = imports(mods)
    assert found["pnp.a"] == [("pnp.runner", "_plain", 2)]
    assert found["pnp.b"] == [("pnp.runner", None, 1), ("pnp.benchmark", None, 2)]
    assert imports(mods, nested=True)["pnp.a"] == [("pnp.runner", "_plain", 2)]
    assert imports(mods, nested=True)["pnp.b"] == [] and imports(mods, nested=False)["pnp.a"] == []
