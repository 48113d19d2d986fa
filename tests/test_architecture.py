"""The layering of docs/architecture.md, checked on the source: every import between cglight's packages
(module level and inside functions, plus module names held as strings for lazy imports) must point down.

Run as a script to print the package → package import table:

    python tests/test_architecture.py
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "cglight"

LAYERS: list[tuple[str, set[str]]] = [
    ("base", {"atomic", "errors", "units", "lazy", "workers_lifetime"}),
    ("support", {"config_files", "console", "help_cache", "newest_checkpoint", "pool", "progress"}),
    ("core", {"energy", "data"}),
    ("engines", {"losses", "prepare", "simulate"}),
    ("analysis", {"evaluate"}),
    ("training", {"training"}),
    ("tools", {"diagnose", "testing", "gaussian_oracle"}),
    ("entry", {"cli", "cglight"}),
]
"""Lowest first; a unit (a subpackage, or a top-level module) imports only units of lower layers."""

COMMAND_MODULES = {"cglight.simulate.run", "cglight.evaluate.run", "cglight.diagnose.run", "cglight.prepare.run",
                   "cglight.data.run"}
"""A command's own module: imported only by ``cglight.cli`` and by modules of its own package."""

KNOWN: set[tuple[str, str]] = set()
"""Violations known and being fixed elsewhere: (importing module, imported module)."""

PUBLIC_UNDERSCORED = {"os._exit"}
"""Underscored names that are a library's public interface."""

_MODULE_STRING = re.compile(r"^cglight(\.\w+)+(:\w+)?$")


@dataclass(frozen=True)
class Import:
    source: str  # importing module
    target: str  # imported module (or module.name)
    lazy: bool  # inside a function, or a module name held as a string
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str) -> str:
    """The layered unit of a cglight module: its subpackage, or the top-level module itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "cglight"


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if not node.level:
        return [f"{node.module}.{a.name}" for a in node.names] if node.module else []
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    prefix = ".".join(base + ([node.module] if node.module else []))
    return [f"{prefix}.{a.name}" for a in node.names]


def _existing(name: str) -> str:
    """``name`` (``pkg.module.attr`` or ``pkg.module``) cut to the longest prefix that is a cglight module."""
    parts = name.split(".")
    while parts:
        path = ROOT.joinpath(*parts)
        if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def imports_of(path: Path, module: str | None = None) -> list[Import]:
    """The cglight imports of the file ``path`` (read as the module ``module``, default: its name under cglight/)."""
    module, tree = module or module_name(path), ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = _resolve(node, module, is_package)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.match(node.value):
            names, lazy = [node.value.split(":")[0]], True
        else:
            names = []
        for name in names:
            if name.startswith("cglight"):
                found.append(Import(module, _existing(name), lazy, getattr(node, "lineno", 0)))
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return found


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def layer_of(name: str) -> int:
    u = unit(name)
    for index, (_, units) in enumerate(LAYERS):
        if u in units:
            return index
    raise AssertionError(f"{name}: unit {u!r} is in no layer of LAYERS (add it here and to docs/architecture.md)")


def violations(imports: list[Import]) -> list[str]:
    found = []
    for i in imports:
        if unit(i.source) == unit(i.target) or (i.source, i.target) in KNOWN:
            continue
        if layer_of(i.target) >= layer_of(i.source):
            found.append(f"{i.source}:{i.line} imports {i.target}{' (lazily)' if i.lazy else ''}: layer "
                         f"{LAYERS[layer_of(i.source)][0]} may not import layer {LAYERS[layer_of(i.target)][0]}")
        elif i.target in COMMAND_MODULES and i.source != "cglight.cli":
            found.append(f"{i.source}:{i.line} imports the command module {i.target}")
    return found


def private_uses(path: Path) -> list[str]:
    """``x._name`` where ``x`` is not ``self``/``cls``: another object's private attribute."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            text = ast.unparse(node)
            if text not in PUBLIC_UNDERSCORED:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {text}")
    return found


def table(imports: list[Import]) -> dict[tuple[str, str], tuple[int, int]]:
    """(unit, unit) → (module-level imports, lazy imports), between different units."""
    eager = Counter((unit(i.source), unit(i.target)) for i in imports if not i.lazy and unit(i.source) != unit(i.target))
    lazy = Counter((unit(i.source), unit(i.target)) for i in imports if i.lazy and unit(i.source) != unit(i.target))
    return {k: (eager[k], lazy[k]) for k in sorted(set(eager) | set(lazy))}


# ----------------------------------------------------------------------------- tests
def test_every_unit_has_a_layer():
    units = {unit(module_name(p)) for p in PACKAGE.rglob("*.py")}
    for u in sorted(units):
        layer_of(f"cglight.{u}" if u != "cglight" else "cglight")


def test_no_import_points_up_or_sideways():
    found = violations(all_imports())
    assert not found, "imports against the layering of docs/architecture.md:\n" + "\n".join(found)


def test_known_exceptions_still_exist():
    """An exception that no longer occurs is removed from KNOWN (so it cannot come back unnoticed)."""
    present = {(i.source, i.target) for i in all_imports()}
    assert KNOWN <= present, f"remove from KNOWN: {sorted(KNOWN - present)}"


def test_the_checker_sees_module_level_lazy_and_string_imports(tmp_path):
    """The oracle: a planted file with one import of each kind, read back by hand."""
    planted = tmp_path / "probe.py"
    planted.write_text("import cglight.training\nfrom . import keys\n\ndef f():\n    from cglight.prepare import run\n\n"
                       "X = {'a': 'cglight.evaluate.run:evaluate'}\n")
    found = imports_of(planted, "cglight.data.probe")
    assert {(i.target, i.lazy) for i in found} == {("cglight.training", False), ("cglight.data.keys", False),
                                                   ("cglight.prepare.run", True), ("cglight.evaluate.run", True)}
    assert len(violations(found)) == 3  # the three arrows up; data.keys is its own package


def test_no_private_attribute_of_another_object():
    found = [use for path in sorted(PACKAGE.rglob("*.py")) for use in private_uses(path)]
    assert not found, "use public names (see docs/architecture.md):\n" + "\n".join(found)


def test_architecture_doc_lists_every_layer():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for name, units in LAYERS:
        assert f"**{name}**" in doc, name
        for u in units:
            assert f"`{u}`" in doc, u


if __name__ == "__main__":
    imports = all_imports()
    for (a, b), (eager, lazy) in table(imports).items():
        print(f"{a:18s} -> {b:18s} module-level {eager:3d}  lazy {lazy:3d}")
    print("\n".join(violations(imports)) or "no layer violations", file=sys.stderr)
