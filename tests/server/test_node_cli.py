"""`mltrail token create|list|revoke` and `mltrail serve` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_token_commands(cli, home):
    r = cli("token", "create", "ci", "--identity", "dev", "--json", home=home.root)
    assert r.code == 0, r.err
    secret = r.json()["token"]
    assert secret.startswith("mlt_")
    assert cli("token", "create", "ci", "--identity", "dev", home=home.root).code == 2
    assert cli("token", "create", "x", "--identity", "nobody", home=home.root).code == 2
    listed = cli("token", "list", "--json", home=home.root).json()
    assert listed == [{"name": "ci", "identity": "dev", "read_only": False,
                       "created": listed[0]["created"]}]
    assert secret not in cli("token", "list", home=home.root).out
    assert cli("token", "revoke", "ci", home=home.root).code == 0
    assert cli("token", "revoke", "ci", home=home.root).code == 2


def test_serve_answers_and_stops(home, tmp_path):
    port_file = tmp_path / "port"
    exe = Path(sys.executable).with_name("mltrail")
    proc = subprocess.Popen([str(exe), "--home", str(home.root), "serve", "--port", "0",
                             "--port-file", str(port_file)], env=os.environ.copy(),
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not port_file.exists() or not port_file.read_text().strip():
            assert proc.poll() is None and time.time() < deadline, "serve did not start"
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        while True:
            try:
                health = httpx.get(url + "/v1/health", timeout=5).json()
                break
            except httpx.HTTPError:
                assert time.time() < deadline
                time.sleep(0.2)
        assert health["in_sync"] is True
        assert "mltrail" in httpx.get(url + "/").text
    finally:
        proc.terminate()
        proc.wait(30)
    assert "mltrail node for" in proc.stderr.read()
