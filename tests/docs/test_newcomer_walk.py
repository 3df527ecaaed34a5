"""The newcomer walk: every page's shell commands (README.md, docs/*.md), run in order from
a clean home, with the installed ``mltrail`` command, as a newcomer's shell would.

Each page gets its own empty folder and home (``docwalk.environment``), so pages run side by
side under xdist. The README's ``## A session`` block (```console) is run by
``tests/e2e/test_e2e_readme.py`` and its Python blocks by ``tests/test_python_api.py``;
the walk runs ```sh blocks only. New pages are picked up by the glob.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docwalk import blocks, plan, run_page

from testkit import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    walk = run_page(page, tmp_path)
    name = page.relative_to(ROOT).as_posix()
    assert walk.code == 0, walk.failure(name)
    assert "Traceback" not in walk.err, f"{name}: a command crashed:\n{walk.err[-3000:]}"
    print(f"{name}: {walk.plan.run} sh blocks run, {len(walk.plan.skipped)} not run "
          f"({'; '.join(walk.plan.skipped) or '-'}), {walk.seconds:.1f} s")


PAGE = '''intro
```sh
echo one
```
```yaml
# file: conf.yaml
a: 1
```
```sh
# not run: needs a cluster
mltrail --ledger https://far.example status
```
```text
one
```
```sh
grep -q "a: 1" conf.yaml
false   # exit 1
echo two \\
  >&2
ls missing-file
echo never
```
'''


def test_the_walk_runs_files_and_skips_and_names_the_failing_line(tmp_path: Path) -> None:
    """A walk can fail: the missing file's ``ls`` fails, named by its page line and its
    stderr; ``# exit 1`` held; the not-run block was counted, not run."""
    page = tmp_path / "page.md"
    page.write_text(PAGE)
    p = plan(PAGE)
    assert (p.run, p.skipped, p.files) == (2, ["needs a cluster"], 1)
    assert [b.lang for b in blocks(PAGE)] == ["sh", "yaml", "sh", "text", "sh"]
    walk = run_page(page, tmp_path / "w")
    assert walk.code != 0 and walk.out == "one\n"
    why = walk.failure("page.md")
    assert "page.md, line 21" in why and "$ ls missing-file" in why, why
    assert "No such file" in why and "two" not in why.split("$ ls")[1]
    assert (tmp_path / "w" / "work" / "conf.yaml").read_text() == "a: 1\n"


def test_an_unexpected_exit_code_fails(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh\ntrue   # exit 2\n```\n")
    walk = run_page(page, tmp_path / "w")
    assert walk.code == 97 and "expected exit 2, got 0" in walk.failure("page.md")
