"""A restarted node between two commands is damage, on check and before any write."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from mltrail.errors import VerificationError
from mltrail.ledger.check import check, reindex
from mltrail.ledger.client import Ledger
from mltrail.ledger.setup import init_home
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
