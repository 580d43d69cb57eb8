"""Lint: no module imports another module's private (`_name`) names.

    python contrib/check_private_imports.py [package ...]   (default: the four apps)

A `_name` is a module's own business; a caller that needs it is the sign of a missing
public function or of a cycle dodged by reaching in (issue 11). import-linter checks
modules, not names, and ruff's PLC2701 skips imports inside one top-level package, so this
checks `from x import _y`, `import x._y` and `x._y` where `x` is an imported first-party
module. Tests and migrations are not checked. Exits 1 and prints file:line for each.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "chat", "mailing", "escalation")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def _module_aliases(tree: ast.AST, first_party: tuple[str, ...]) -> dict[str, str]:
    """Local name -> first-party module it is bound to by an import in this file."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in first_party:
                    local = a.asname or a.name.split(".")[0]
                    aliases[local] = a.name if a.asname else local
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and node.module.split(".")[0] in first_party
        ):
            for a in node.names:
                if _is_module(f"{node.module}.{a.name}"):
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def violations(path: Path, first_party: tuple[str, ...]) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    aliases = _module_aliases(tree, first_party)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in first_party:
                continue
            parts = node.module.split(".")
            names = [a.name for a in node.names if _private(a.name)]
            if any(_private(p) for p in parts):
                names.append(node.module)
        elif isinstance(node, ast.ImportFrom):  # relative import: always first-party
            names = [a.name for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Import):
            names = [
                a.name
                for a in node.names
                if a.name.split(".")[0] in first_party
                and any(_private(p) for p in a.name.split("."))
            ]
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            # module._name: only when the left side is a first-party module this file imported
            base = _dotted(node.value)
            root, _, rest = (base or "").partition(".")
            module = f"{aliases[root]}.{rest}".rstrip(".") if root in aliases else None
            names = [f"{module}.{node.attr}"] if module and _is_module(module) else []
        else:
            continue
        rel = path.relative_to(ROOT)
        found += [f"{rel}:{node.lineno}: imports private name {n!r}" for n in names]
    return found


def main(packages: list[str]) -> int:
    found = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                found += violations(path, PACKAGES)
    print("\n".join(found) or "no private imports across modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or list(PACKAGES)))
