"""Fast reads on a home joined to a JSON-RPC node (anvil): one batched call learns the head,
web3 stays unimported while the index is current, and another member's write is seen."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit import ANVIL_KEY, PASSWORD, fund

pytestmark = pytest.mark.xdist_group("anvil")

PROBE = ("import sys\nfrom mltrail.cli.main import run\nsys.argv = ['mltrail', *sys.argv[1:]]\n"
         "try:\n    run()\nexcept SystemExit:\n    pass\n"
         "print('WEB3', 'web3' in sys.modules, 'eth' in sys.modules, file=sys.stderr)\n")


def test_rpc_home_reads_without_web3(anvil, tmp_path, cli):
    from mltrail.identity import address_of
    from mltrail.ledger.setup import init_home

    a = init_home(tmp_path / "a" / ".mltrail", PASSWORD, rpc_url=anvil,
                  private_key=bytes.fromhex(ANVIL_KEY))
    reg = a.settings().registry
    b = init_home(tmp_path / "b" / ".mltrail", PASSWORD, rpc_url=anvil, registry=reg)
    fund(anvil, address_of(b, "member"))
    (tmp_path / "f.txt").write_text("hello")
    r = cli("--home", str(a.root), "register", str(tmp_path / "f.txt"), "-k", "dataset",
            "--name", "shared", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    env = dict(os.environ, MLTRAIL_HOME=str(a.root))
    p = subprocess.run([sys.executable, "-c", PROBE, "show", "shared", "--json"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "WEB3 False False" in p.stderr, p.stderr
    # b's index lags the node: its first read syncs through the full client, then is fast
    env_b = dict(os.environ, MLTRAIL_HOME=str(b.root))
    p = subprocess.run([sys.executable, "-c", PROBE, "show", r.json()["artefact_id"]],
                       env=env_b, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "WEB3 True" in p.stderr, p.stderr
    p = subprocess.run([sys.executable, "-c", PROBE, "list"], env=env_b, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and "WEB3 False" in p.stderr, p.stderr
    assert r.json()["artefact_id"][:12] in p.stdout  # (its name too, once names are on chain)
