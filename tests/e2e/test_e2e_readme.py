"""The README's example session, run line by line as a newcomer would, with the installed
``mltrail`` command on PATH: it must not drift from what the code does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testkit import ROOT


def session_lines() -> list[str]:
    """The ``$ `` lines of the console block under '## A session' in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A session"):]
    block = section[section.index("```console") + len("```console"):]
    block = block[:block.index("```")]
    return [line[2:] for line in block.splitlines() if line.startswith("$ ")]


def test_readme_walkthrough_runs_end_to_end(tmp_path: Path):
    """As a newcomer's shell runs it, every command in its own process."""
    lines = session_lines()
    assert any("register" in line for line in lines) and len(lines) >= 8
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    _walkthrough(tmp_path, lines, env)


def _walkthrough(tmp_path: Path, lines: list[str], env: dict[str, str]) -> None:
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    script = "set -euo pipefail\n" + "\n".join(
        f"echo '+ {i}' >&2\n{line}" for i, line in enumerate(lines))
    p = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, f"README line failed:\n{p.stderr[-2000:]}"
    assert "Traceback" not in p.stderr
    listed = json.loads(p.stdout[p.stdout.rindex("\n[") + 1:])  # the last command's JSON
    by_name = {a["name"]: a for a in listed}
    assert by_name["cnn"]["state"] == "trained"
    assert by_name["cnn"]["parents"] == [by_name["digits"]["id"]]
    assert "model cnn" in p.stdout  # lineage and history print names
