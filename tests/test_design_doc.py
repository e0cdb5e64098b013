"""Issue 19: docs/design.md matches the code. Its layout table names every module and package of
``src/reliqa/`` (and nothing that is not there); a module it names inside a folder exists there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "reliqa"
DESIGN = ROOT / "docs" / "design.md"


def _module_cells() -> list[str]:
    """The 'modules' column of the layout table (``| part | layer | modules | may import |``)."""
    text = DESIGN.read_text()
    table = text[text.index("## Layout (`src/reliqa/`)"):].split("\n\n")[2]
    rows = [line for line in table.splitlines() if line.startswith("|")][2:]
    assert rows, "docs/design.md: no layout table"
    return [row.split("|")[3] for row in rows]


def _split(cell: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Top-level names of a cell, and (folder, text inside its parentheses) pairs."""
    nested: list[tuple[str, str]] = []
    depth, start, last = 0, 0, ""
    outside: list[str] = []
    for index, char in enumerate(cell):
        if char == "(":
            if depth == 0:
                start = index + 1
                last = "".join(outside)
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                names = re.findall(r"`([^`]+)`", last)
                if names and names[-1].endswith("/"):
                    nested.append((names[-1], cell[start:index]))
        elif depth == 0:
            outside.append(char)
    top = re.findall(r"`([^`]+)`", "".join(outside))
    return top, nested


def _tree() -> set[str]:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    packages = {f"{path.name}/" for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    return modules | packages


def test_layout_table_names_every_top_level_module_and_package() -> None:
    named: set[str] = set()
    for cell in _module_cells():
        named.update(_split(cell)[0])
    assert named == _tree(), (
        f"docs/design.md layout table: missing {sorted(_tree() - named)}, "
        f"not in src/reliqa {sorted(named - _tree())}"
    )


def test_modules_named_inside_a_folder_exist() -> None:
    stale = []
    for cell in _module_cells():
        for folder, inner in _split(cell)[1]:
            for name in re.findall(r"`([a-z_]+)`", inner):
                candidates = (PACKAGE / folder / f"{name}.py", PACKAGE / folder / name / "__init__.py")
                if not any(path.is_file() for path in candidates):
                    stale.append(f"{folder}{name}")
    assert not stale, f"docs/design.md names modules that are not in src/reliqa: {stale}"
