"""The newcomer walk: read a page's fenced blocks and run its shell ones as a user would.

Conventions (README.md and docs/*.md):
- a ```sh block holds commands a user types, one a line (backslash continuations and
  ``#`` comments allowed); every such block of a page runs, in order, in one bash
  session started in an empty folder with a fresh home, so a block may use what the
  blocks before it made (files, variables, servers started with ``&``);
- a ```sh block whose first line is ``# not run: <reason>`` is shown, not run, and counted;
- a command line ending in ``# exit N`` must exit with N (a refusal or a failed check
  shown on purpose); any other command must exit 0;
- a block of another language whose first line is ``# file: NAME`` is a file the reader
  saves as NAME: the walk writes it there when it reaches it;
- ```text blocks are output; nothing else is read.

This module parses and runs; it asserts nothing (the tests in this folder do).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = re.compile(r"^#\s*not run:\s*(\S.*)$")
FILE = re.compile(r"^#\s*file:\s*(\S+)\s*$")
EXPECT = re.compile(r"#\s*exit\s+(\d+)\s*$")
MARK = "@@walk "


@dataclass
class Block:
    """One fenced block: its language, the page line of its first content line, its lines."""

    lang: str
    line: int
    lines: list[str]

    @property
    def not_run(self) -> str | None:
        m = NOT_RUN.match(self.lines[0].strip()) if self.lines else None
        return m.group(1) if m else None

    @property
    def file(self) -> str | None:
        m = FILE.match(self.lines[0].strip()) if self.lines and self.lang != "sh" else None
        return m.group(1) if m else None


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown page, in order."""
    out: list[Block] = []
    current: Block | None = None
    for n, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if current is None and m:
            current = Block(m.group(1), n + 1, [])
        elif current is not None and line.strip() == "```":
            out.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    return out


@dataclass
class Plan:
    """A page's bash script and where each script line came from."""

    script: str
    # script line -> (page line, the page's command shown for it)
    origin: dict[int, tuple[int, str]] = field(default_factory=dict)
    run: int = 0        # sh blocks run
    skipped: list[str] = field(default_factory=list)  # reasons of the blocks not run
    files: int = 0      # blocks saved as files


def plan(text: str) -> Plan:
    """The script that runs a page's sh blocks and saves its file blocks, in page order."""
    lines = ["set -euo pipefail",
             "trap 'trap - DEBUG; kill $(jobs -p) 2>/dev/null || true' EXIT",
             f"trap 'printf \"\\n{MARK}%s\\n\" \"$LINENO\" >&2' DEBUG"]
    p = Plan("")

    def add(text: str, page_line: int, shown: str | None = None) -> None:
        lines.append(text)
        p.origin[len(lines)] = (page_line, text if shown is None else shown)

    for b in blocks(text):
        if b.file is not None:
            body = " ".join(shlex.quote(line) for line in b.lines[1:])  # one script line
            add(f"printf '%s\\n' {body} > {shlex.quote(b.file)}", b.line,
                f"(save the {b.lang} block as {b.file})")
            p.files += 1
        elif b.lang == "sh" and b.not_run is not None:
            p.skipped.append(b.not_run)
        elif b.lang == "sh":
            p.run += 1
            for i, line in enumerate(b.lines):
                m = EXPECT.search(line)
                if m is None:
                    add(line, b.line + i)
                    continue
                add("set +e", b.line + i, line)
                add(line, b.line + i)
                add(f"__rc=$?; set -e; if [ \"$__rc\" != {m.group(1)} ]; then "
                    f"echo \"expected exit {m.group(1)}, got $__rc\" >&2; exit 97; fi",
                    b.line + i, line)
    p.script = "\n".join(lines) + "\n"
    return p


@dataclass
class Walk:
    """What running a page gave: exit code, output, and the failing page line if any."""

    code: int
    out: str
    err: str
    plan: Plan
    seconds: float

    def failure(self, page: str) -> str:
        """The page line that failed, its command and its stderr (markers removed)."""
        marks = [m for m in re.finditer(rf"^{MARK}(\d+)$", self.err, re.M)
                 if int(m.group(1)) in self.plan.origin]
        if not marks:
            return f"{page}: exit {self.code} before any command:\n{self.err[-3000:]}"
        line, cmd = self.plan.origin[int(marks[-1].group(1))]
        first = len(marks) - 1  # the first mark of the failing page line's last run
        while first and self.plan.origin[int(marks[first - 1].group(1))][0] == line:
            first -= 1
        tail = re.sub(rf"^{MARK}\d+\n?", "", self.err[marks[first].end():], flags=re.M).strip()
        return (f"{page}, line {line}: exit {self.code}\n  $ {cmd}\n"
                + "\n".join("  " + t for t in tail.splitlines()[-40:]))


def environment(root: Path) -> dict[str, str]:
    """A newcomer's shell: the venv's ``mltrail`` first on PATH, a fresh home and HOME,
    the keystore password exported (as the README's session does), one torch thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "HOME": str(root / "user"), "MLTRAIL_HOME": str(root / "work" / ".mltrail"),
        "MLTRAIL_PASSWORD": "choose-a-password", "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1"})
    return env


def run_page(page: Path, root: Path, timeout: float = 480) -> Walk:
    """Run ``page``'s plan in ``root/work`` (empty) with :func:`environment`; servers the
    page started in the background are stopped with the whole process group."""
    p = plan(page.read_text())
    work = root / "work"
    (root / "user").mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    (root / "walk.sh").write_text(p.script)
    out_path, err_path = root / "stdout", root / "stderr"
    start = time.monotonic()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(["bash", str(root / "walk.sh")], cwd=work, env=environment(root),
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                start_new_session=True)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            code = 124
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return Walk(code, out_path.read_text(errors="replace"), err_path.read_text(errors="replace"),
                p, time.monotonic() - start)
