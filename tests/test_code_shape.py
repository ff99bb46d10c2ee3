"""The package stays readable in one sitting: no class over 150 lines, no function over 50.

A definition may be longer only for a reason, written down in ``LONGER``.
Lines are counted from ``def``/``class`` to the last line of the body, docstring included.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cio_sync"

MAX_CLASS_LINES = 150
MAX_FUNCTION_LINES = 50

# "path:qualified name" -> why it is longer.
LONGER: dict[str, str] = {}


def _long_definitions(path: Path) -> list[tuple[str, int]]:
    """Every class and function in ``path`` longer than its limit, by qualified name, with its length."""
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                limit = MAX_CLASS_LINES if isinstance(child, ast.ClassDef) else MAX_FUNCTION_LINES
                if lines > limit:
                    found.append((name, lines))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def _all_long() -> dict[str, int]:
    return {
        f"{path.relative_to(ROOT).as_posix()}:{name}": lines
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, lines in _long_definitions(path)
    }


def test_no_class_or_function_is_longer_than_its_limit_without_a_reason() -> None:
    assert {key: lines for key, lines in _all_long().items() if key not in LONGER} == {}


def test_every_definition_allowed_to_be_longer_still_is() -> None:
    # An entry left behind would let the definition grow again unnoticed.
    assert sorted(set(LONGER) - set(_all_long())) == []


def test_the_count_sees_a_long_method_inside_a_class(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    body = "".join(f"        x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    source.write_text(
        f"class Short:\n    def long(self) -> None:\n{body}\n    def short(self) -> None:\n        pass\n"
    )
    assert _long_definitions(source) == [("Short.long", MAX_FUNCTION_LINES + 1)]


def _imports(path: Path) -> set[str]:
    """The modules of the package that ``path`` imports (under ``TYPE_CHECKING`` too), as dotted names."""
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            # ``from . import rules`` imports the module ``rules``; ``from .rules import X`` both.
            found |= {f"{target}.{alias.name}" for alias in node.names}
            if node.module:
                found.add(target)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cio_sync"):
            found.add(node.module)
    return found


def test_no_module_of_the_package_imports_itself_back() -> None:
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in PACKAGE.rglob("*.py")
    }
    # The package's facade imports its parts; no part may import the facade back.
    graph = {name: {m for m in _imports(path) if m in modules} for name, path in modules.items()}
    cycles: list[list[str]] = []

    def visit(name: str, trail: list[str], done: set[str]) -> None:
        if name in trail:
            cycles.append([*trail[trail.index(name) :], name])
            return
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, [*trail, name], done)
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        visit(name, [], done)
    assert cycles == []


# How far from the user each part is: a part imports only parts below it (or itself). The shared
# vocabulary imports nothing of the packages; the emulator imports nothing of the client's side.
LEVELS = {
    "cli": 6,
    "readback": 5,
    "outputs": 4,
    "engine": 3,
    "transport": 2,
    "state": 2,
    "input": 1,
    **dict.fromkeys(("errors", "outcome", "clock", "redact", "version"), 0),
}


def test_imports_run_downwards_only() -> None:
    upwards: list[str] = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts in (("__init__",), ("__main__",)):
            continue  # the facade and the entry point sit above everything
        part = parts[0]
        for target in _imports(path):
            pieces = target.split(".")
            if len(pieces) < 2 or pieces[0] != "cio_sync" or pieces[1] == part:
                continue
            other = pieces[1]
            if part == "emulator" or other == "emulator":
                if part != "cli":  # the command line runs the emulator's command
                    upwards.append(f"{'/'.join(parts)} -> {other}")
            elif other in LEVELS and LEVELS[other] >= LEVELS.get(part, 0):
                upwards.append(f"{'/'.join(parts)} -> {other}")
    assert sorted(set(upwards)) == []


def test_every_module_path_the_docs_name_exists() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m for page in docs for m in re.findall(r"`(cio_sync/[\w/]+(?:\.py|/))`", page.read_text(encoding="utf-8"))}
    assert len(named) > 20
    assert sorted(m for m in named if not (ROOT / m).exists()) == []
