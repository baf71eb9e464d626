"""The package's layout, read from its source: folders in one direction, no import circles, short modules.

Every import is counted, those inside functions too (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "prunepeft"
# a folder may import from its own modules and from the folders before it, never from those after it
ORDER = ("common", "data", "method", "handover", "runs", "bench", "cli")
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = ("prunepeft", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The prunepeft modules that module ``name`` imports, anywhere in its source."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, level - 1 steps up
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import module` imports the module; `from module import name` the module
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m in MODULES and m != name}


def folder(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ORDER) else None


GRAPH = {name: imports(name) for name in MODULES}


def test_the_graph_is_read_from_the_source():
    # a check of the reader itself, on imports known to exist: it must see lazy ones and `from pkg import mod`
    assert "prunepeft.method.hybrid" in GRAPH["prunepeft.method.pruner"]  # from prunepeft.method import hybrid
    assert "prunepeft.runs.final_training" in GRAPH["prunepeft.cli.main"]  # inside a function
    assert "prunepeft.method.modules.lora" in GRAPH["prunepeft.method.modules"]  # relative or absolute


def test_every_module_is_in_a_folder_of_the_map():
    loose = [n for n in MODULES if folder(n) is None and n not in ("prunepeft", "prunepeft.__main__")]
    assert not loose, f"modules outside the folders {ORDER}: {loose}"


@pytest.mark.parametrize("part", ORDER)
def test_each_folder_says_what_it_holds_and_may_import(part):
    doc = ast.get_docstring(ast.parse((ROOT / part / "__init__.py").read_text(encoding="utf-8")))
    assert doc and "import" in doc, f"{part}/__init__.py must open with what it holds and what it may import"


def test_imports_flow_one_way():
    wrong = []
    for name, targets in GRAPH.items():
        source = folder(name)
        if source is None:
            continue  # prunepeft/__init__ and __main__: the public surface, above every folder
        for target in targets:
            if target == "prunepeft" and source == "cli":
                continue  # the version number, for --version
            part = folder(target)
            if part is None or ORDER.index(part) > ORDER.index(source):
                wrong.append(f"{name} imports {target}")
    assert not wrong, "imports against the order " + " <- ".join(ORDER) + ":\n" + "\n".join(sorted(wrong))


def test_no_import_circles():
    circles, state = [], {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in MODULES:
        if name not in state:
            visit(name, [name])
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_module_is_long():
    long = {n: c for n, p in MODULES.items() if (c := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_errors_shown_as_messages_name_real_classes():
    from prunepeft.cli.main import USER_ERROR_NAMES

    for module, name in USER_ERROR_NAMES:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, Exception), (module, name)
    assert len(set(USER_ERROR_NAMES)) == len(USER_ERROR_NAMES)


def test_no_source_file_is_ignored_by_git():
    # a pattern such as `runs/` once hid src/prunepeft/runs/ from commits: the package worked here, not in a clone
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT.parents[1] / ".git").exists():
        pytest.skip("not a git checkout")
    paths = [str(p) for p in MODULES.values()]
    ignored = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True).stdout.split()
    assert not ignored, f"source files that git ignores (fix .gitignore): {ignored}"
