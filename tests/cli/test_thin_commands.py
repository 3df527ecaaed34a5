"""The CLI stays a thin shell: no function in these command modules grows a workflow.

A command is argument parsing, one call into the library and printing. Counting the
statements of every function (imports and nested printing helpers aside) is a cheap
proxy that fails when a workflow (loops over the ledger, several library steps, state
kept between them) moves back into a command: the largest body today is 12 statements
(``lineage``: a direction, a format, a graph, then one of three ways to show it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CLI = Path(__file__).resolve().parents[2] / "src" / "mltrail" / "cli"
MODULES = ["core", "roles", "ledger_cmd", "provenance", "node", "oracle", "ids", "audit",
           "serve", "pol"]
MAX_STATEMENTS = 12


def _size(fn: ast.FunctionDef) -> int:
    n = 0

    def count(stmts: list[ast.stmt]) -> None:
        nonlocal n
        for s in stmts:
            if isinstance(s, ast.Import | ast.ImportFrom | ast.FunctionDef):
                continue  # lazy imports; nested human()/notify() printers
            if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant):
                continue  # the docstring
            n += 1
            for name in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(s, name, None)
                if isinstance(sub, list):
                    count(sub)

    count(fn.body)
    return n


@pytest.mark.parametrize("module", MODULES)
def test_command_modules_hold_no_workflow(module: str) -> None:
    tree = ast.parse((CLI / f"{module}.py").read_text())
    big = {fn.name: _size(fn) for fn in tree.body
           if isinstance(fn, ast.FunctionDef) and _size(fn) > MAX_STATEMENTS}
    assert not big, f"cli/{module}.py: move the workflow into the library: {big}"


def test_the_size_check_counts_nested_blocks() -> None:
    src = "def f():\n    '''doc'''\n    import x\n    with a:\n        if b:\n            c()\n"
    fn = ast.parse(src).body[0]
    assert isinstance(fn, ast.FunctionDef) and _size(fn) == 3
