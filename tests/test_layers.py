"""The packages form layers that only point down, and no module-level import cycle exists (issue 8).

Layers, bottom to top: ``pretrained`` (registry, downloads, the user-facing exceptions)
→ ``stylegan`` (generator, weights I/O) → ``encoders`` (inversion, morphs) → ``tools``
(command lines). A module may import its own package or one below it, never one above,
and that holds for imports inside functions too: a deferred import is still a dependency.

Cycles are looked for among the imports a module runs when it is imported (module level,
``if TYPE_CHECKING:`` blocks excluded): those are the ones that break depending on which
module happens to be imported first. An import is an edge to the module it names
(``from a.b import c`` names ``a.b.c`` when that is a module, else ``a.b``).

The checker is plain ``ast`` reading, no imports, and tests itself on a small tree.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("pretrained", "stylegan", "encoders", "tools")  # bottom first


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, e.g. "stylegan.checkpoint"
    target: str  # the module it names, e.g. "stylegan.convert.safe_unpickle"
    line: int
    runs_on_import: bool  # module level and not under ``if TYPE_CHECKING:``


def module_names(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    found = {}
    for package in packages:
        for file in sorted((root / package).rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, at_import: bool):
    """Yield ``(import node, runs on import)`` for every import below ``node``, nested ones included."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, at_import
        elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            yield from _walk(child, False)
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), False)
            for stmt in child.orelse:
                yield from _walk(ast.Module(body=[stmt], type_ignores=[]), at_import)
        else:
            yield from _walk(child, at_import)


def imports_of(name: str, file: Path, modules: dict[str, Path]) -> list[Import]:
    """The imports of one module that name a module of ``modules`` (others are third-party or stdlib)."""
    is_package = file.name == "__init__.py"
    found = []
    for node, at_import in _walk(ast.parse(file.read_text(encoding="utf-8"), str(file)), True):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        for target in targets:
            while target and target not in modules:  # ``import a.b.c`` of a name that is not a file
                target = target.rpartition(".")[0]
            if target:
                found.append(Import(name, target, node.lineno, at_import))
    return found


def all_imports(root: Path, packages: tuple[str, ...]) -> list[Import]:
    modules = module_names(root, packages)
    return [imp for name, file in modules.items() for imp in imports_of(name, file, modules)]


def upward_imports(imports: list[Import], layers: tuple[str, ...]) -> list[str]:
    """``"a.x:12 imports b.y"`` for each import of a package above the importer's package."""
    rank = {package: i for i, package in enumerate(layers)}
    return [f"{imp.source}:{imp.line} imports {imp.target}" for imp in imports
            if rank[imp.target.split(".")[0]] > rank[imp.source.split(".")[0]]]


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected groups (Tarjan) of two or more modules, or a module importing itself."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        if imp.runs_on_import:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:  # recursion depth is bounded by the module count (a few hundred)
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# ----------------------------------------------------------------------------- the repository


def test_packages_only_import_downwards() -> None:
    imports = all_imports(REPO, LAYERS)
    assert len(imports) > 100  # the walk really found the code
    assert upward_imports(imports, LAYERS) == []


def test_no_module_level_import_cycle() -> None:
    assert import_cycles(all_imports(REPO, LAYERS)) == []


def test_weights_io_has_no_cycle_even_counting_deferred_imports() -> None:
    """checkpoint ← convert ← weights: even imports inside functions do not loop back (the old 5-file cycle)."""
    deferred = [Import(i.source, i.target, i.line, True) for i in all_imports(REPO, ("stylegan",))
                if i.source.startswith(("stylegan.checkpoint", "stylegan.convert", "stylegan.weights"))
                and i.target.startswith(("stylegan.checkpoint", "stylegan.convert", "stylegan.weights"))]
    assert deferred and import_cycles(deferred) == []


def imports_of_test_modules(imports: list[Import]) -> list[str]:
    """``"a.test_x:3 imports a.test_y"`` for each import of a ``test_*`` module by another module."""
    return [f"{imp.source}:{imp.line} imports {imp.target}" for imp in imports
            if imp.target.rpartition(".")[2].startswith("test_") and imp.target != imp.source]



def test_no_test_module_imports_another() -> None:
    """Shared fixtures live in ``conftest.py`` and shared helpers in ``tests/helpers.py`` (or a
    ``*_cases.py``/``*_harness.py`` next to the tests): importing a test module would also run
    its module-level set-up and tie two test files together."""
    imports = all_imports(REPO, ("tests",))
    assert any(i.target == "tests.helpers" for i in imports)  # the walk really found the tests
    assert imports_of_test_modules(imports) == []


# ----------------------------------------------------------------------------- the checker itself


def _tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


@pytest.mark.parametrize("line", [
    "from high import thing",
    "import high.mod",
    "def f():\n    from high.mod import x\n",  # deferred imports count for layering
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import high\n",
])
def test_checker_finds_an_upward_import(tmp_path: Path, line: str) -> None:
    _tree(tmp_path, {"low/__init__.py": "", "low/a.py": line, "high/__init__.py": "from low import a\n",
                     "high/mod.py": "from .. import low\nfrom . import mod\n"})
    found = upward_imports(all_imports(tmp_path, ("low", "high")), ("low", "high"))
    assert len(found) == 1 and found[0].startswith("low.a:") and "imports high" in found[0]


def test_checker_resolves_relative_imports(tmp_path: Path) -> None:
    _tree(tmp_path, {"low/__init__.py": "from .sub import b\n", "low/sub/__init__.py": "",
                     "low/sub/b.py": "from ..a import x\nfrom . import c\n", "low/a.py": "", "low/sub/c.py": ""})
    edges = {(i.source, i.target) for i in all_imports(tmp_path, ("low",))}
    assert edges == {("low", "low.sub.b"), ("low.sub.b", "low.a"), ("low.sub.b", "low.sub.c")}


def test_checker_finds_a_module_level_cycle_only(tmp_path: Path) -> None:
    _tree(tmp_path, {"p/__init__.py": "", "p/a.py": "from .b import x\n", "p/b.py": "from . import c\n",
                     "p/c.py": "import p.a\n", "p/d.py": "from .e import y\n",
                     "p/e.py": "def f():\n    from .d import z\n"})
    assert import_cycles(all_imports(tmp_path, ("p",))) == [["p.a", "p.b", "p.c"]]


def test_checker_finds_a_test_module_import(tmp_path: Path) -> None:
    _tree(tmp_path, {"t/__init__.py": "", "t/helpers.py": "", "t/test_a.py": "from t.helpers import x\n",
                     "t/test_b.py": "from t.test_a import fixture\nfrom t import helpers\n"})
    assert imports_of_test_modules(all_imports(tmp_path, ("t",))) == ["t.test_b:1 imports t.test_a"]
