"""A home made with its own lifecycle runs Proof-of-Learning and an audit end to end.

The lifecycle is the example in ``docs/lifecycle.md`` (read from the page, so the document
is what runs): other kind names and other state names than the default, with ``bindings:``
mapping PoL and audits onto them. Everything goes through the installed ``mltrail``
command as separate processes, and the artefacts must end in the lab's own states.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from testkit import wait_healthy

DOC = Path(__file__).resolve().parents[2] / "docs" / "lifecycle.md"
MLTRAIL = shutil.which("mltrail", path=str(Path(sys.executable).parent)) or "mltrail"


def _lab_yaml() -> str:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert blocks, "docs/lifecycle.md lost its example lifecycle"
    return str(blocks[0])


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "MLTRAIL_PASSWORD": "pw", "MLTRAIL_HOME": str(root / ".mltrail"),
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def __call__(self, *args: str, who: str | None = None, code: int = 0) -> Any:
        argv = [MLTRAIL, *(["--as", who] if who else []), *args]
        r = subprocess.run(argv, cwd=self.root, env=self.env, capture_output=True, text=True,
                           timeout=300, check=False)
        assert r.returncode == code, f"{' '.join(args)} -> {r.returncode}: {r.stderr}"
        assert "Traceback" not in r.stderr
        return json.loads(r.stdout) if "--json" in args else r.stdout

    def state(self, artefact: str) -> str:
        return str(self("show", artefact, "--json")["state"])


def _serve(home: Home, model: Path) -> tuple[subprocess.Popen[bytes], str]:
    port_file = home.root / "port"
    proc = subprocess.Popen([MLTRAIL, "serve-model", str(model), "--key", str(home.root / "k.pem"),
                             "--port", "0", "--port-file", str(port_file)],
                            cwd=home.root, env=home.env, stderr=subprocess.PIPE)
    return proc, wait_healthy(proc, port_file, 120, "serve-model")


def test_custom_lifecycle_runs_pol_and_an_audit(tmp_path: Path) -> None:
    home = Home(tmp_path)
    (tmp_path / "lab.yaml").write_text(_lab_yaml())
    (tmp_path / "data.csv").write_text("x,y\n1,2\n3,4\n")
    init = home("init", "--lifecycle", "lab.yaml", "--name", "admin", "--json")
    assert init["identity"] == "admin"
    for name, role in {"bob": "builder", "carol": "checker", "olga": "runner",
                       "ivan": "inspector"}.items():
        home("id", "create", name)
        home("roles", "grant", name, role)
    # the default lifecycle's names mean nothing here
    home("register", "data.csv", "--kind", "dataset", who="bob", code=2)

    trained = home("pol", "train", "proof", "--epochs", "1", "--k", "20", "--json", who="bob")
    model_id = trained["model_id"]
    assert home.state(model_id) == "fitted"
    data = home("register", "data.csv", "--kind", "corpus", "--json", who="bob")  # a new block
    assert home.state(data["artefact_id"]) == "ingested"
    verdict = home("pol", "verify", "--model", model_id, "--json", who="carol")
    assert verdict["verdict"] == "accepted" and verdict["ledger"]["recorded"]
    assert home.state(model_id) == "certified"

    made = home("audit", "make-model", "--out", "served", "--json")
    served_model = home("register", made["model"], "--kind", "network", "--parent",
                        data["artefact_id"], "--json", who="bob")
    assert home.state(served_model["artefact_id"]) == "drafted"
    proc, url = _serve(home, Path(made["model"]))
    try:
        reg = home("audit", "register", "--target", url, "--name", "lab-svc", "--model-id",
                   served_model["artefact_id"], "--json", who="olga")
        sid = reg["artefact_id"]
        assert home.state(sid) == "submitted"
        home("transition", sid, "live", who="olga")
        report = home("audit", "run", sid, "--max-queries", "80", "--seed", "4", "--json",
                      who="ivan")
    finally:
        proc.terminate()
        proc.wait(10)
    assert report["verdict"] == "pass" and report["ledger"]["state"] == "cleared"
    assert home.state(sid) == "cleared"
    kinds = {a["kind"] for a in home("list", "--json")}
    assert kinds == {"corpus", "network", "endpoint"}
