"""Shared fixtures: fresh homes on the embedded chain, an anvil node, the CLI in-process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "test-password"
os.environ.setdefault("MLTRAIL_PASSWORD", PASSWORD)

# One identity per role of the default lifecycle, plus admin (the deployer).
ROLE_IDENTITIES = {
    "steward": "data_steward", "dev": "model_developer", "verifier": "verifier",
    "auditor": "auditor", "operator": "operator",
}


def make_home(path: Path):
    """A fresh embedded home whose admin granted one role to each of ROLE_IDENTITIES."""
    from mltrail.identity import create_identity
    from mltrail.ledger.client import Ledger
    from mltrail.ledger.setup import init_home

    h = init_home(path / ".mltrail", password=PASSWORD)
    with Ledger.open(h, password=PASSWORD) as admin:
        for name, role in ROLE_IDENTITIES.items():
            admin.grant_role(create_identity(h, name, PASSWORD), role)
    return h


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


def anvil_binary() -> str | None:
    for candidate in (ROOT / "node_modules" / ".bin" / "anvil", shutil.which("anvil")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# anvil's first dev account (public test key, funded with 10,000 ETH on every anvil)
ANVIL_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


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


def fund(url: str, address: str, eth: int = 10) -> None:
    """Send ``eth`` from anvil's first dev account to ``address`` (test set-up only)."""
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(url))
    acct = w3.eth.account.from_key(ANVIL_KEY)
    tx = {"to": address, "value": eth * 10**18, "gas": 21_000, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
          "maxFeePerGas": 10**11, "maxPriorityFeePerGas": 10**9}
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction))


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
