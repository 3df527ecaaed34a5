"""The installed ``mltrail`` console script, run as a user runs it (a real process): usage
errors and bad input exit 2 with one line and no traceback, ``--version`` works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = Path(sys.executable).with_name("mltrail")


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLTRAIL_")}
    return subprocess.run([str(EXE), *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)


def test_version(tmp_path):
    from importlib.metadata import version

    p = run("--version", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == f"mltrail {version('mltrail')}"


@pytest.mark.parametrize("args,needle", [
    (["show"], "Missing argument"),
    (["nonsense"], "No such command"),
    (["list", "--frobnicate"], "No such option"),
    (["list", "--limit", "ten"], "Invalid value"),
    (["list", "--limit", "1" + "0" * 30], "Invalid value"),
    (["roles", "grant", "alice"], "Missing argument"),
    (["--as"], "requires an argument"),
])
def test_usage_errors_exit_2_in_one_line(tmp_path, args, needle):
    p = run(*args, cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_bad_input_outside_and_inside_a_home(tmp_path):
    p = run("list", cwd=tmp_path)
    assert p.returncode == 2 and "not inside an mltrail home" in p.stderr
    (tmp_path / "afile").write_text("x")
    p = run("--home", str(tmp_path / "afile" / "h"), "init", cwd=tmp_path,
            env={"MLTRAIL_PASSWORD": "pw"})
    assert p.returncode == 2 and "is not a folder" in p.stderr and "Traceback" not in p.stderr
    os.mkfifo(tmp_path / "fifo")
    p = run("init", "--lifecycle", str(tmp_path / "fifo"), cwd=tmp_path,
            env={"MLTRAIL_PASSWORD": "pw"})
    assert p.returncode == 2 and "FIFO" in p.stderr
    assert sorted(x.name for x in tmp_path.iterdir()) == ["afile", "fifo"]


def test_debug_shows_the_traceback(tmp_path):
    p = run("--debug", "list", cwd=tmp_path)
    assert p.returncode != 0 and "Traceback" in p.stderr
