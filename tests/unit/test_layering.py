"""The package tree is the architecture (CONTRIBUTING.md): each layer imports only the layers
below it, and the pure core never imports trio. Every import counts, including the ones inside
functions."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "chaosvol"

# layer -> the layers it may import (itself always). The top-level modules (chaosvol/__init__.py,
# __main__.py) are the entry points: they may import anything but testing.
ALLOWED: dict[str, set[str]] = {
    "core": {"faults"},  # the engine and the profile loader read the fault registry
    "faults": {"core"},
    "wire": {"core"},
    "backends": {"core", "wire"},
    "proxy": {"core", "faults", "wire", "backends"},
    "tools": {"core", "faults", "wire", "backends", "proxy"},
    "cli": {"core", "faults", "wire", "backends", "proxy", "tools"},
    "testing": {"core", "faults", "wire", "backends", "proxy", "tools", "cli"},
    "": {"core", "faults", "wire", "backends", "proxy", "tools", "cli"},
}


def layer_of(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else ""


def imported_layers(path: Path) -> set[tuple[str, int]]:
    """(layer, line) of every chaosvol module `path` imports."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "chaosvol" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
                found.add((parts[1], node.lineno))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_is_in_a_known_layer() -> None:
    assert {layer_of(path) for path in MODULES} == set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path: Path) -> None:
    layer = layer_of(path)
    wrong = sorted(
        f"{path.relative_to(PACKAGE.parent)}:{line} imports chaosvol.{target}"
        for target, line in imported_layers(path)
        if target != layer and target not in ALLOWED[layer]
    )
    assert not wrong, f"layer {layer or 'top'} may import {sorted(ALLOWED[layer])} only:\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_arrow(tmp_path: Path) -> None:
    bad = PACKAGE / "core" / "x.py"  # never written: the parse is checked on a copy's text
    text = "def f():\n    from chaosvol.proxy.server import PluginServer\n"
    copy = tmp_path / "x.py"
    copy.write_text(text)
    tree_imports = {(layer, line) for layer, line in imported_layers(copy)}
    assert tree_imports == {("proxy", 2)}
    assert "proxy" not in ALLOWED[layer_of(bad)]


PURE = sorted(
    ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    for layer in ("core", "faults")
    for path in (PACKAGE / layer).rglob("*.py")
)


@pytest.mark.parametrize("module", PURE)
def test_core_module_does_not_import_trio(module: str) -> None:
    code = f"import sys, {module}; print('trio' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
