"""Mutation testing for one module against its fast tests: do the tests notice a bug?

    .venv/bin/python contrib/mutation.py core/outbox/rows.py tests/chat/test_delivery.py \
        tests/chat/test_sweep.py [--list] [--only 3,7] [--timeout 300]

It plants one small bug at a time in a copy of the checkout (never in your tree), runs
the given tests against it with `pytest -x`, and prints each mutant as `killed` (a
test failed: good) or `SURVIVED` (every test passed: either a missing test, or a
change that alters no behaviour, an *equivalent* mutant, which you should be able to
explain). The bugs are the ones that matter in this codebase:

- a comparison flipped or its boundary moved (`<` / `<=`, `==` / `!=`, `in` / `not in`);
- one operand of an `and` / `or` dropped (a missing condition);
- a keyword of a query dropped (`.filter(organization=...)`, `status=...`,
  `skip_locked=True`), a `.filter()`/`.exclude()`/`.select_for_update()` removed from
  a chain (a missing organization filter, a lost row lock);
- an `if` negated, a `not` removed, a `return True` / `return False` flipped;
- `transaction.on_commit(fn)` replaced by calling `fn` at once (a publish or enqueue
  before commit).

The copy is rebuilt from the working tree (without .git, .venv, var/) once; each mutant
rewrites the target file there with `ast.unparse` of the mutated tree (comments are
lost, behaviour is not) and restores it afterwards. The first run is the unmutated
module: if its tests fail, nothing is measured. Exit status: the number of survivors
(capped at 100), so CI could gate on it.
"""

from __future__ import annotations

import argparse
import ast
import copy
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLIP = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
QUERY_METHODS = {"filter", "exclude", "get", "update", "select_for_update", "order_by"}
CHAIN_DROPPABLE = {"filter", "exclude", "select_for_update"}


@dataclass
class Mutant:
    number: int
    line: int
    what: str
    source: str


def _mutations(tree: ast.Module) -> Iterator[tuple[int, str, ast.Module]]:
    """Yield (line, description, mutated tree), one small change each."""
    nodes = list(ast.walk(tree))
    for index, node in enumerate(nodes):

        def mutated(change, edit, index=index, node=node):  # type: ignore[no-untyped-def]
            clone = copy.deepcopy(tree)
            edit(list(ast.walk(clone))[index])
            return node.lineno, change, ast.fix_missing_locations(clone)

        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in FLIP:
                    new = FLIP[type(op)]

                    def edit(t, i=i, new=new):  # type: ignore[no-untyped-def]
                        t.ops[i] = new()

                    yield mutated(f"{type(op).__name__} -> {new.__name__}", edit)
        elif isinstance(node, ast.BoolOp) and len(node.values) > 1:
            name = "and" if isinstance(node.op, ast.And) else "or"
            for i, value in enumerate(node.values):

                def edit(t, i=i, name=name):  # type: ignore[no-untyped-def]
                    del t.values[i]
                    if len(t.values) == 1:  # a BoolOp needs two operands
                        t.values.append(ast.Constant(name == "and"))

                yield mutated(f"drop operand {i + 1} of `{name}`: {ast.unparse(value)[:60]}", edit)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            # `now + backoff` -> `now`: a delay, a margin or an offset forgotten.
            if not isinstance(node.right, ast.Constant):
                dropped = ast.unparse(node.right)[:50]
                yield _replace(
                    tree, nodes, node, lambda t: t.left, f"drop `{dropped}` from `+`/`-`"
                )
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):

            def edit(t):  # type: ignore[no-untyped-def]
                t.op = ast.UAdd()  # `+x` keeps the node in place; truthiness unchanged
                t.operand = ast.Call(ast.Name("bool", ast.Load()), [t.operand], [])

            yield mutated(f"drop `not` in {ast.unparse(node)[:60]}", edit)
        elif isinstance(node, ast.If):

            def edit(t):  # type: ignore[no-untyped-def]
                t.test = ast.UnaryOp(ast.Not(), t.test)

            yield mutated(f"negate `if {ast.unparse(node.test)[:60]}`", edit)
        elif (
            isinstance(node, ast.Return)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, bool)
        ):

            def edit(t):  # type: ignore[no-untyped-def]
                t.value = ast.Constant(not t.value.value)

            yield mutated(f"return {node.value.value} -> {not node.value.value}", edit)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in QUERY_METHODS:
                for i, keyword in enumerate(node.keywords):

                    def edit(t, i=i):  # type: ignore[no-untyped-def]
                        del t.keywords[i]

                    yield mutated(f"drop `{keyword.arg}=` from .{method}()", edit)
            if method in CHAIN_DROPPABLE:
                # `x.filter(...)` -> `x`
                yield _replace(
                    tree,
                    nodes,
                    node,
                    lambda t: t.func.value,
                    f"remove .{method}(...) from the chain",
                )
            if method == "on_commit" and node.args:

                def edit(t):  # type: ignore[no-untyped-def]
                    t.func = t.args[0]
                    t.args = []
                    t.keywords = []

                yield mutated("on_commit(fn) -> fn() at once", edit)


def _replace(tree: ast.Module, nodes: list[ast.AST], node: ast.AST, make, what: str):  # type: ignore[no-untyped-def]
    """Mutate a copy of `tree` with `node` replaced by `make(node's copy)` in its parent."""
    index = nodes.index(node)
    clone = copy.deepcopy(tree)
    cloned = list(ast.walk(clone))
    target = cloned[index]
    for parent in cloned:
        for field, value in ast.iter_fields(parent):
            if value is target:
                setattr(parent, field, make(target))
            elif isinstance(value, list) and any(v is target for v in value):
                value[[id(v) for v in value].index(id(target))] = make(target)
    return node.lineno, what, ast.fix_missing_locations(clone)  # type: ignore[attr-defined]


def mutants(path: Path) -> list[Mutant]:
    source = path.read_text()
    tree = ast.parse(source)
    ordered = sorted(_mutations(tree), key=lambda m: m[0])
    return [
        Mutant(number, line, what, ast.unparse(mutated) + "\n")
        for number, (line, what, mutated) in enumerate(ordered, start=1)
    ]


def _copy_tree(dest: Path) -> None:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "var", "__pycache__", "*.sqlite3*", "node_modules"
    )
    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    (dest / "var").mkdir(exist_ok=True)


def _run_tests(workdir: Path, tests: list[str], timeout: float) -> tuple[bool, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmd = [str(ROOT / ".venv" / "bin" / "pytest"), "-x", "-q", "-p", "no:randomly", *tests]
    try:
        done = subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, "timeout (counted as killed: the mutant hangs a test)"
    tail = (done.stdout.strip().splitlines() or [""])[-1]
    return done.returncode == 0, tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("module", help="file to mutate, e.g. core/outbox/rows.py")
    parser.add_argument("tests", nargs="*", help="test files or node ids to run")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--only", default="", help="comma-separated mutant numbers")
    parser.add_argument("--lines", default="", help="only mutants on lines A-B")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = parser.parse_args()

    target = Path(args.module)
    found = mutants(ROOT / target)
    if args.only:
        wanted = {int(n) for n in args.only.split(",")}
        found = [m for m in found if m.number in wanted]
    if args.lines:
        low, _, high = args.lines.partition("-")
        found = [m for m in found if int(low) <= m.line <= int(high or low)]
    if args.list or not args.tests:
        for m in found:
            print(f"#{m.number:<4} {target}:{m.line:<5} {m.what}")
        return 0

    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        work = Path(tmp) / "tree"
        _copy_tree(work)
        original = (work / target).read_text()
        ok, tail = _run_tests(work, args.tests, args.timeout)
        if not ok:
            print(f"the tests fail on the unmutated code ({tail}); nothing measured")
            return 100
        killed: list[Mutant] = []
        survived: list[Mutant] = []
        for m in found:
            (work / target).write_text(m.source)
            started = time.monotonic()
            passed, tail = _run_tests(work, args.tests, args.timeout)
            took = time.monotonic() - started
            verdict = "SURVIVED" if passed else "killed"
            (survived if passed else killed).append(m)
            print(
                f"#{m.number:<4} {target}:{m.line:<5} {verdict:<8} {took:5.1f}s  {m.what}",
                flush=True,
            )
        (work / target).write_text(original)
    total = len(killed) + len(survived)
    print(f"\n{target}: {total} mutants, {len(killed)} killed, {len(survived)} survived")
    for m in survived:
        print(f"  survived #{m.number} line {m.line}: {m.what}")
    return min(len(survived), 100)


if __name__ == "__main__":
    sys.exit(main())
