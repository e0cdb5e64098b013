"""Issue 19: the tree keeps its shape. No import cycle inside ``src/reliqa`` (also between the
modules of one folder, and counting imports inside functions: a lazy import is still a
dependency), no ``reliqa.training`` → ``reliqa.evaluation`` import, no source file over
:data:`MAX_LINES` lines and no function over :data:`MAX_FUNCTION_LINES` lines (but those of
:data:`LONG_FUNCTIONS`, a list that can only shrink)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 500
MAX_FUNCTION_LINES = 80
"""Longest function or method, counted from its ``def`` line to its last line (decorators not
counted): ``end_lineno - lineno + 1`` of its ``ast`` node, docstring included."""

# The functions still over MAX_FUNCTION_LINES, each with its length today. The training loops
# that were here plug into one loop skeleton now (reliqa.training.loop, issue 19) and left the
# list; others own distortions/ and shorten theirs. The list can only shrink: a listed function
# may not grow, and one that is split (or renamed) must leave the list. Never add to it: split
# the function instead.
LONG_FUNCTIONS: dict[str, int] = {}
LONG_FUNCTION_FOLDERS = ("reliqa/training/", "reliqa/distortions/")
"""The only folders whose functions may be in :data:`LONG_FUNCTIONS`."""


def module_files(root: Path, package: str = "reliqa") -> dict[str, Path]:
    """Dotted module name → file, for every module and package under ``root/package``."""
    modules = {}
    for path in (root / package).rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph(root: Path, package: str = "reliqa") -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports (anywhere in the file, relative imports
    resolved; ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``)."""
    modules = module_files(root, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parent, base] if base else parent)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else base)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
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
                    cycles.append(sorted(component))
    return cycles


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cycle_finder_sees_cycles_inside_a_folder_and_through_lazy_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "",
            "pkg/part/__init__.py": "",
            "pkg/part/a.py": "from pkg.part import b\nfrom pkg import low\n",
            "pkg/part/b.py": "def f():\n    from .c import g\n",
            "pkg/part/c.py": "import pkg.part.a\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.part.a"] == {"pkg.part.b", "pkg.low"}
    assert import_cycles(graph) == [["pkg.part.a", "pkg.part.b", "pkg.part.c"]]
    (tmp_path / "pkg/part/c.py").write_text("from pkg import low\n")
    assert import_cycles(import_graph(tmp_path, "pkg")) == []


def test_no_import_cycle_in_reliqa() -> None:
    cycles = import_cycles(import_graph(ROOT))
    assert not cycles, "import cycles in src/reliqa: " + "; ".join(" ↔ ".join(c) for c in cycles)


def test_training_never_imports_evaluation() -> None:
    """Training sits below evaluation (docs/design.md): what it needs of the catalogue comes
    from the registries below it (``reliqa.metrics``, ``reliqa.models.registry``)."""
    upward = sorted(
        f"{module} → {target}"
        for module, targets in import_graph(ROOT).items()
        if module.startswith("reliqa.training")
        for target in targets
        if target.startswith("reliqa.evaluation")
    )
    assert not upward, f"training imports evaluation: {upward}"


@pytest.mark.parametrize("path", sorted(module_files(ROOT).values()), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_source_file_over_max_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)}: {lines} lines (at most {MAX_LINES}); split it"


def function_lengths(root: Path, package: str = "reliqa") -> dict[str, int]:
    """``"path:qualified.name"`` → lines, for every function and method under ``root/package``
    (nested ones too, named ``outer.inner``); ``path`` is relative to ``root``."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str, path: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):  # @overload stubs share a name: the longest
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    lengths[f"{path}:{name}"] = max(lines, lengths.get(f"{path}:{name}", 0))
                visit(child, f"{name}.", path)
            else:
                visit(child, prefix, path)

    for file in sorted((root / package).rglob("*.py")):
        visit(ast.parse(file.read_text(encoding="utf-8")), "", file.relative_to(root).as_posix())
    return lengths


def test_function_lengths_count_from_def_to_last_line(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "@decorator\ndef f():\n    def g():\n        pass\n    return g\n\n\n"
            "class C:\n    def m(self):\n        'doc'\n",
        },
    )
    assert function_lengths(tmp_path, "pkg") == {"pkg/a.py:f": 4, "pkg/a.py:f.g": 2, "pkg/a.py:C.m": 2}


def test_no_function_over_max_function_lines() -> None:
    """Issue 19: a function over :data:`MAX_FUNCTION_LINES` lines is split into named helpers;
    only the listed training loops are left, and they may not grow."""
    over = {name: n for name, n in function_lengths(ROOT).items() if n > MAX_FUNCTION_LINES}
    new = sorted(f"{name} ({n} lines)" for name, n in over.items() if name not in LONG_FUNCTIONS)
    grown = sorted(
        f"{name} ({n} lines, listed with {LONG_FUNCTIONS[name]})"
        for name, n in over.items()
        if name in LONG_FUNCTIONS and n > LONG_FUNCTIONS[name]
    )
    assert not new, f"over {MAX_FUNCTION_LINES} lines, split them into named helpers: {new}"
    assert not grown, f"listed long functions grew (they may only shrink): {grown}"


def test_long_function_list_only_shrinks() -> None:
    """A listed function that is no longer over the limit (split, renamed or gone) leaves the
    list, and the list names only functions of :data:`LONG_FUNCTION_FOLDERS`."""
    lengths = function_lengths(ROOT)
    stale = sorted(name for name in LONG_FUNCTIONS if lengths.get(name, 0) <= MAX_FUNCTION_LINES)
    outside = sorted(name for name in LONG_FUNCTIONS if not name.startswith(LONG_FUNCTION_FOLDERS))
    assert not stale, f"no longer over {MAX_FUNCTION_LINES} lines: remove from LONG_FUNCTIONS: {stale}"
    assert not outside, f"LONG_FUNCTIONS may list only {LONG_FUNCTION_FOLDERS}: {outside}"
