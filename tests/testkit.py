"""Test helpers shared by tests and benchmarks (import as ``testkit``; conftest files clash)."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "test-password"
os.environ.setdefault("MLTRAIL_PASSWORD", PASSWORD)

# One identity per role of the default lifecycle, plus admin (the deployer).
ROLE_IDENTITIES = {
    "steward": "data_steward", "dev": "model_developer", "verifier": "verifier",
    "auditor": "auditor", "operator": "operator",
}
# anvil's first dev account (public test key, funded with 10,000 ETH on every anvil)
ANVIL_KEY = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


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


def anvil_binary() -> str | None:
    for candidate in (ROOT / "node_modules" / ".bin" / "anvil", shutil.which("anvil")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def make_home_with_artefacts(path: Path) -> Path:
    """A home (see :func:`make_home`) holding dataset ``ds`` and model ``m`` derived from
    it; returns the home's folder."""
    from mltrail.ledger.client import Ledger

    h = make_home(path)
    with Ledger.open(h, identity="steward", password=PASSWORD) as led:
        led.register("dataset", "sha256:" + "ab" * 32, name="ds")
    with Ledger.open(h, identity="dev", password=PASSWORD) as led:
        led.register("model", "sha256:" + "cd" * 32, parents=["ds"], name="m")
    return Path(h.root)


def wait_healthy(proc: Any, port_file: Path, timeout: float, what: str) -> str:
    """The URL of a server started with ``--port 0 --port-file F`` once its ``/healthz``
    answers 200; AssertionError (with its stderr) if it exits, or after ``timeout`` s."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text:
            url = f"http://127.0.0.1:{text}"
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"{what} did not start")

