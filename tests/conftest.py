"""Shared fixtures: fresh homes on the embedded chain, an anvil node, the CLI in-process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit import PASSWORD, anvil_binary, free_port, make_home


@pytest.fixture
def home(tmp_path: Path):
    return make_home(tmp_path)


@pytest.fixture
def open_as(home) -> Iterator[Callable[[str], object]]:
    """``open_as(name)`` -> a Ledger of ``home`` as that identity (closed afterwards)."""
    from mltrail.ledger.client import Ledger

    opened: list[Ledger] = []

    def _open(name: str = "admin") -> Ledger:
        led = Ledger.open(home, identity=name, password=PASSWORD)
        opened.append(led)
        return led

    yield _open
    for led in opened:
        led.close()


@pytest.fixture(scope="module")
def anvil() -> Iterator[str]:
    """A real anvil node on a free loopback port; yields its URL."""
    binary = anvil_binary()
    if binary is None:
        pytest.fail("anvil not installed: run 'make setup' (npm install)")
    port = free_port()
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("anvil did not start")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def json(self) -> object:
        import json

        return json.loads(self.out)


@pytest.fixture
def cli(capsys, monkeypatch) -> Callable[..., CliResult]:
    """Run ``mltrail ARGS`` in-process through the real entry point (exit codes included)."""
    from mltrail.cli import main

    def _run(*args: str, home: Path | None = None, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> CliResult:
        capsys.readouterr()
        argv = ["mltrail", *([f"--home={home}"] if home else []), *args]
        with monkeypatch.context() as m:
            m.setattr(sys, "argv", argv)
            for k, v in (env or {}).items():
                m.setenv(k, v)
            if cwd:
                m.chdir(cwd)
            main.STATE.home = main.STATE.identity = None
            main.STATE.debug = False
            try:
                main.run()
                code = 0
            except SystemExit as exc:
                code = int(exc.code or 0) if not isinstance(exc.code, str) else 2
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run
