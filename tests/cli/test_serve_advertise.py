"""`mltrail --as NAME serve --advertise URL` publishes the URL on NAME's profile, not on the
home's default identity's (the admin's): the installed command, a real node on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mltrail.provenance.signing import parse_profile
from testkit import PASSWORD

MLTRAIL = shutil.which("mltrail", path=str(Path(sys.executable).parent)) or "mltrail"


def _healthy(port_file: Path) -> bool:
    port = port_file.read_text().strip() if port_file.exists() else ""
    try:
        return bool(port) and httpx.get(f"http://127.0.0.1:{port}/v1/health").is_success
    except httpx.HTTPError:
        return False


def test_advertise_publishes_the_callers_url(home, open_as, tmp_path: Path) -> None:
    env = {**os.environ, "MLTRAIL_HOME": str(home.root), "MLTRAIL_PASSWORD": PASSWORD}
    port_file = tmp_path / "port"
    url = "https://node.dev.example"
    proc = subprocess.Popen([MLTRAIL, "--as", "dev", "serve", "--port", "0", "--port-file",
                             str(port_file), "--advertise", url],
                            cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port_file):
            assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert f"published {url} as dev's node" in err.decode()
    reader = open_as("admin")
    assert parse_profile(reader.profile(open_as("dev").address)).url == url
    assert parse_profile(reader.profile(reader.address)).url is None
