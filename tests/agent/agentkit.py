"""Helpers for the agent tests: a private agent folder, the installed command, and a way to
tell whether a command really ran in the agent (its served count)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from testkit import agent_processes, make_home_with_artefacts

EXE = str(Path(sys.executable).with_name("mltrail"))


def run(args: list[str], env: dict[str, str], cwd: Path | None = None, stdin: Any = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin)


def agent_status(env: dict[str, str]) -> dict[str, Any]:
    p = run(["agent", "status", "--json"], env)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout))


def served(env: dict[str, str]) -> int:
    """How many commands the agent has run (0 when none runs)."""
    s = agent_status(env)
    return int(s["commands"]) if s["running"] else 0


@contextmanager
def agent_folder() -> Iterator[Path]:
    """A short private folder for sockets (a socket path is limited to 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="mla-", dir="/tmp"))
    try:
        yield d
    finally:  # stop any agent a command started there (a test stops its own; this is a net)
        for pid, env in agent_processes():
            if env.get("MLTRAIL_AGENT_DIR") == str(d):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def agent_env(folder: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, MLTRAIL_AGENT="auto", MLTRAIL_AGENT_DIR=str(folder))
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


@contextmanager
def running_agent(env: dict[str, str], idle: float = 300) -> Iterator[dict[str, Any]]:
    """Start an agent with ``env``, yield its status, stop it (and kill it if it lingers)."""
    p = run(["agent", "start", "--idle", str(idle), "--json"], env)
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["running"], info
    try:
        yield info
    finally:
        run(["agent", "stop"], env)
        with suppress(ProcessLookupError):
            os.kill(int(info["pid"]), signal.SIGKILL)


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@contextmanager
def home_and_agent(root: Path) -> Iterator[tuple[Path, dict[str, str], dict[str, Any]]]:
    """In ``root``: a home with dataset ``ds`` and model ``m``, a file ``data.csv``, and an
    agent serving it from a private folder; yields (root, env, the agent's status)."""
    home_root = make_home_with_artefacts(root)
    (root / "data.csv").write_text("x,y\n1,2\n")
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(home_root))
        with running_agent(env) as info:
            yield root, env, info

