"""A restarted node between two commands is damage, on check and before any write."""

from __future__ import annotations

import json
import random
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from eth_hash.auto import keccak

from mltrail.config import Home
from mltrail.errors import VerificationError
from mltrail.ledger.check import check, reindex
from mltrail.ledger.client import Ledger
from mltrail.ledger.setup import init_home
from mltrail.testing.ledger_forgeries import PASSWORD as FORGER_PASSWORD
from mltrail.testing.ledger_forgeries import attempt, judge
from mltrail.testing.ledger_rpc_forgeries import RPC_FORGERS, build
from testkit import ANVIL_KEY, PASSWORD, anvil_binary, free_port

pytestmark = pytest.mark.xdist_group("anvil")


def _start(port: int) -> subprocess.Popen[bytes]:
    binary = anvil_binary()
    assert binary, "anvil not installed: run 'make setup'"
    proc = subprocess.Popen([binary, "--host", "127.0.0.1", "--port", str(port), "--silent"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}", headers={"Content-Type": "application/json"},
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}).encode())
    while time.time() < deadline and proc.poll() is None:
        try:  # answering JSON-RPC, not only accepting connections
            with urllib.request.urlopen(request, timeout=1) as reply:  # noqa: S310 - loopback
                if json.loads(reply.read()).get("result"):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("anvil did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("redeploy", [False, True])
def test_anvil_restarted_between_two_commands(tmp_path: Path, cli, redeploy: bool) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(port)
    try:
        home = init_home(tmp_path / "a" / ".mltrail", PASSWORD, rpc_url=url,
                         private_key=bytes.fromhex(ANVIL_KEY))
        with Ledger.open(home, password=PASSWORD) as admin:
            admin.register("model", "sha256:" + "a1" * 32)
            admin.register("model", "sha256:" + "a2" * 32)
            check(admin)
        _stop(proc)
        proc = _start(port)
        if redeploy:  # the same key at nonce 0: same registry address and code, new chain
            init_home(tmp_path / "b" / ".mltrail", PASSWORD, rpc_url=url,
                      private_key=bytes.fromhex(ANVIL_KEY))
        (tmp_path / "w.bin").write_bytes(b"w")
        w = cli("register", str(tmp_path / "w.bin"), "--kind", "model", home=home.root)
        assert w.code == 1 and "ledger damaged" in w.err, (w.code, w.err)
        r = cli("ledger", "check", home=home.root)
        assert r.code == 1 and "ledger damaged" in r.err and "reindex" not in r.err
        with Ledger.open(home, password=PASSWORD) as admin, \
                pytest.raises(VerificationError, match="ledger damaged"):
            reindex(admin)
    finally:
        _stop(proc)


def _rpc(url: str, method: str, *params: object) -> object:
    request = urllib.request.Request(
        url, headers={"Content-Type": "application/json"},
        data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                         "params": list(params)}).encode())
    with urllib.request.urlopen(request, timeout=10) as reply:  # noqa: S310 - loopback
        return json.loads(reply.read())["result"]


def _rpc_home(tmp_path: Path, url: str) -> tuple[Home, str]:
    """An rpc home on ``url`` (a registry of its own) with a trained model."""
    home = init_home(tmp_path / ".mltrail", PASSWORD, rpc_url=url,
                     private_key=bytes.fromhex(ANVIL_KEY))
    with Ledger.open(home, password=PASSWORD) as admin:
        admin.grant_role(admin.address, "model_developer")
        data = admin.register("dataset", "sha256:" + tmp_path.name.encode().hex()[:64]
                              .ljust(64, "0"), name="data").artefact_id
        model = admin.register("model", "sha256:" + "b7" * 32, parents=[data]).artefact_id
        admin.transition(model, "trained")
        check(admin)
    return home, model


@pytest.mark.parametrize("family", ["index_cell", "index_swap", "index_unhappened_state"])
def test_rpc_check_compares_the_index_with_views_and_events(tmp_path: Path, anvil: str,
                                                            family: str) -> None:
    home, _ = _rpc_home(tmp_path, anvil)
    assert FORGER_PASSWORD == PASSWORD
    outcome = attempt(family, home, 5, PASSWORD)
    assert outcome.detected and "index differs from chain" in outcome.message, outcome
    with Ledger.open(home, password=PASSWORD) as admin:
        reindex(admin)
        check(admin)


def test_rpc_node_state_edited_is_damage(tmp_path: Path, anvil: str) -> None:
    """A node whose contract storage was edited (anvil_setStorageAt) disagrees with the
    events it served: the contract's views are compared with every artefact."""
    home, model = _rpc_home(tmp_path, anvil)
    registry = home.settings().registry
    owner = None
    for slot in range(64):
        key = keccak(slot.to_bytes(32, "big") + bytes.fromhex(model[2:]))
        value = int(str(_rpc(anvil, "eth_getStorageAt", registry, "0x" + key.hex(), "latest")),
                    16)
        if value >> 96:
            owner = key, value
            break
    assert owner is not None
    key, value = owner
    _rpc(anvil, "anvil_setStorageAt", registry, "0x" + key.hex(),
         "0x" + (value & ~255 | 6).to_bytes(32, "big").hex())  # trained -> approved
    with Ledger.open(home, password=PASSWORD) as admin, \
            pytest.raises(VerificationError, match=f"ledger damaged: artefact {model}"):
        check(admin)


def test_rpc_node_forked_below_the_remembered_head(tmp_path: Path, anvil: str, cli) -> None:
    """The node reverted to a snapshot and grew another history past the pinned head."""
    home, model = _rpc_home(tmp_path, anvil)
    snapshot = _rpc(anvil, "evm_snapshot")
    with Ledger.open(home, password=PASSWORD) as admin:
        admin.anchor(model, b"\x01" * 32, 1)  # raises the pinned head past the snapshot
    pinned = home.pins()
    assert pinned is not None
    _rpc(anvil, "evm_revert", snapshot)
    while int(str(_rpc(anvil, "eth_blockNumber")), 16) <= pinned.head:
        _rpc(anvil, "evm_mine")
    r = cli("ledger", "check", home=home.root)
    assert r.code == 1 and f"block {pinned.head} is 0x" in r.err, r.err
    assert "reindex" not in r.err
    with Ledger.open(home, password=PASSWORD) as admin, \
            pytest.raises(VerificationError, match="ledger damaged"):
        admin.register("model", "sha256:" + "c8" * 32)


@pytest.mark.parametrize("family", sorted(RPC_FORGERS))
def test_rpc_node_forgeries(tmp_path: Path, anvil: str, family: str) -> None:
    """Each node forgery (storage edited, forked, reset) with one fixed seed; rates over
    many seeds: bench/ledger_forgeries.py."""
    home = build(tmp_path / ".mltrail", anvil, bytes.fromhex(ANVIL_KEY), random.Random(4))
    outcome = judge(home, RPC_FORGERS[family](home, anvil, random.Random(4)), PASSWORD)
    assert outcome.detected and "ledger damaged" in outcome.message, outcome
    assert "reindex" not in outcome.message
