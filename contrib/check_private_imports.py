"""Lint: no module imports another module's private (`_name`) names.

    python contrib/check_private_imports.py [package ...]   (default: the four apps)

A `_name` is a module's own business; a caller that needs it is the sign of a missing
public function or of a cycle dodged by reaching in (issue 11). import-linter checks
modules, not names, and ruff's PLC2701 skips imports inside one top-level package, so this
checks `from x import _y` (and `import x._y`) for first-party modules. Tests and
migrations are not checked. Exits 1 and prints file:line for each.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "chat", "mailing", "escalation")


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(path: Path, first_party: tuple[str, ...]) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
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
