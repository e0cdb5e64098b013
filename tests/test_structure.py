"""Issue 19: the tree keeps its shape. No import cycle inside ``src/reliqa`` (also between the
modules of one folder, and counting imports inside functions: a lazy import is still a
dependency), no ``reliqa.training`` → ``reliqa.evaluation`` import, and no source file over
:data:`MAX_LINES` lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 500

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
