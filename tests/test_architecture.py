"""The layer order of docs/ARCHITECTURE.md, checked on the code's own imports (read with ``ast``).

Every import counts, at module level or inside a function body: an import placed in a function to
dodge a cycle is still a cycle here. A module may import from its own layer or a lower one, never
a higher one; no two modules import each other, directly or round a longer circle; no module is
over MAX_LINES lines. The checker itself is tested on small synthetic trees, so each rule is shown
to fail when it should.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("skyeye_data", "skyeye_model", "benchmarks")
MAX_LINES = 400

# Bottom to top (docs/ARCHITECTURE.md, "Layers"). A module belongs to the layer of the longest
# prefix that names it (a package's own name, in PACKAGE_ROOTS, names only its __init__); every
# module of the tree must have one.
PACKAGE_ROOTS = frozenset({"skyeye_data"})
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", (
        "skyeye_data", "skyeye_data.io", "skyeye_data.hashing", "skyeye_data.tables", "skyeye_data.schema",
        "skyeye_data.boxes", "skyeye_data.console", "skyeye_data.quarantine", "skyeye_data.limits",
        "skyeye_data.rawfs", "skyeye_data.safejson", "skyeye_data.safeyaml", "skyeye_data.imagecheck",
        "skyeye_data.textguard", "skyeye_data.json_stream", "skyeye_data.json_cursor",
    )),
    ("sources", ("skyeye_data.sources", "skyeye_data.video")),
    ("synth", ("skyeye_data.synth",)),
    ("convert", ("skyeye_data.convert", "skyeye_data.doctor")),
    ("review and evaluation", ("skyeye_data.review", "skyeye_data.evaluation")),
    ("compile and export", ("skyeye_data.compile", "skyeye_data.export")),
    ("model", ("skyeye_model",)),
    ("commands", (
        "skyeye_data.compile.cli", "skyeye_data.review.cli", "skyeye_data.evaluation.cli", "skyeye_data.export.cli",
        "skyeye_data.preview", "skyeye_data.doctor_cli", "skyeye_model.cli",
    )),
    ("app", ("skyeye_data.cli",)),
    ("benchmarks", ("benchmarks",)),
]  # fmt: skip


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            files[module_name(root, path)] = path
    return files


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The tree's modules that ``name`` imports anywhere in its body (``from a import b`` names a.b when b is a module)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a package: the deepest module we know
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path, packages: tuple[str, ...]) -> dict[str, set[str]]:
    files = module_files(root, packages)
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def layer_of(module: str, layers=LAYERS) -> int | None:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            below = module.startswith(prefix + ".") and prefix not in PACKAGE_ROOTS
            if (module == prefix or below) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def unplaced(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    return sorted(m for m in graph if layer_of(m, layers) is None)


def upward_imports(graph: dict[str, set[str]], layers=LAYERS) -> list[str]:
    problems = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, layers)
        for target in sorted(targets):
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                problems.append(f"{module} ({layers[mine][0]}) imports {target} ({layers[theirs][0]}), a higher layer")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def oversized(root: Path, packages: tuple[str, ...], limit: int = MAX_LINES) -> list[str]:
    files = module_files(root, packages)
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in files.items()}
    return [f"{name}: {n} lines" for name, n in sorted(sizes.items()) if n > limit]


# -- the checker on synthetic trees: each rule can fail ---------------------------------------


def write_tree(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


TOY_LAYERS = [("low", ("pkg", "pkg.low")), ("high", ("pkg.high",))]


def test_checker_finds_an_upward_import_even_inside_a_function(tmp_path):
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low.py": "def f():\n    from pkg.high import g\n    return g\n",
        "pkg/high.py": "from pkg import low\n\ndef g():\n    return low\n",
    })  # fmt: skip
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.low"] == {"pkg.high"} and graph["pkg.high"] == {"pkg.low"}
    assert upward_imports(graph, TOY_LAYERS) == ["pkg.low (low) imports pkg.high (high), a higher layer"]
    assert cycles(graph) == [["pkg.high", "pkg.low"]]


def test_checker_finds_a_longer_circle_and_resolves_relative_imports(tmp_path):
    write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/low/__init__.py": "from .a import x\n",
        "pkg/low/a.py": "from . import b\nx = 1\n",
        "pkg/low/b.py": "import pkg.low.c\n",
        "pkg/low/c.py": "from ..low.a import x\n",
        "pkg/high.py": "import pkg.low.a\n",
    })  # fmt: skip
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.low.c"] == {"pkg.low.a"} and graph["pkg.high"] == {"pkg.low.a"}
    assert cycles(graph) == [["pkg.low.a", "pkg.low.b", "pkg.low.c"]]
    assert upward_imports(graph, TOY_LAYERS) == []  # downward imports are fine


def test_checker_flags_unplaced_and_oversized_modules(tmp_path):
    write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/stray.py": "x = 1\n" * 401, "other/__init__.py": ""})
    graph = import_graph(tmp_path, ("pkg", "other"))
    assert unplaced(graph, TOY_LAYERS) == ["other"]
    assert oversized(tmp_path, ("pkg",)) == ["pkg.stray: 401 lines"]


# -- the real tree ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(ROOT, PACKAGES)


def test_every_module_has_a_layer(graph):
    assert unplaced(graph) == [], "add the module to LAYERS here and to docs/ARCHITECTURE.md"


def test_no_import_runs_up_the_layers(graph):
    assert upward_imports(graph) == []


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_module_is_over_the_size_limit():
    assert oversized(ROOT, PACKAGES) == []


def test_the_evaluation_reader_accepts_the_predictions_table_it_is_given():
    """`skyeye predict` writes skyeye_data.tables.PREDICTION_SCHEMA; `skyeye eval` checks its columns by its own rules."""
    from skyeye_data.evaluation.predictions import COLUMN_RULES, schema_problems
    from skyeye_data.tables import EVAL_SCHEMA, PREDICTION_CARRIED_COLUMNS, PREDICTION_SCHEMA

    assert schema_problems(PREDICTION_SCHEMA) == []
    assert {rule.name for rule in COLUMN_RULES} <= set(PREDICTION_SCHEMA.names)
    assert all(EVAL_SCHEMA.field(name) == PREDICTION_SCHEMA.field(name) for name in PREDICTION_CARRIED_COLUMNS)
    assert schema_problems(PREDICTION_SCHEMA.remove(PREDICTION_SCHEMA.get_field_index("prediction"))) == ["missing column(s): prediction"]
