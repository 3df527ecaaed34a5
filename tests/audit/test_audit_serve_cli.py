"""`mltrail serve-model` and `mltrail serve-proxy` as real processes on free ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from testkit import wait_healthy


def _start(args: list[str], port_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([sys.executable, "-m", "mltrail.cli.main", *args, "--port", "0",
                             "--port-file", str(port_file)], stderr=subprocess.PIPE)
    return proc, wait_healthy(proc, port_file, 90, "server")


def test_serve_model_and_proxy_processes(tmp_path, seeded_path) -> None:  # type: ignore[no-untyped-def]
    procs = []
    try:
        sup, url = _start(["serve-model", str(seeded_path), "--key", str(tmp_path / "k.pem")],
                          tmp_path / "p1")
        procs.append(sup)
        info = httpx.get(url + "/v1/model").json()
        assert info["seed_config"] is not None and (tmp_path / "k.pem").exists()
        bad = httpx.post(url + "/v1/classify", content=b"{oops")
        assert bad.status_code == 400 and "malformed JSON" in bad.json()["error"]
        prx, purl = _start(["serve-proxy", "--upstream", url, "--mode", "substitute",
                            "--cheap-model", str(seeded_path), "--receipts", "forge"],
                           tmp_path / "p2")
        procs.append(prx)
        assert httpx.get(purl + "/v1/model").json()["public_key"] == info["public_key"]
        r = httpx.post(purl + "/v1/classify", json={"inputs": [[0.0] * 64], "nonce": "n"})
        assert r.status_code == 200 and r.json()["receipt"]["body"]["nonce"] == "n"
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
