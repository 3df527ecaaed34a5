"""A proof in the reference-engine format (a ``TrainingSpec`` header, written by mltrail
0.1.0 before issue 18) is refused by the installed command: exit 2, one line naming the
version and telling the user to re-record, never a verdict, nothing on the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mltrail.errors import InputError
from mltrail.pol.bundle import read_manifest
from mltrail.pol.verifier import verify_bundle
from testkit import PASSWORD, make_home

EXE = str(Path(sys.executable).with_name("mltrail"))
Z = "sha256:" + "0" * 64


def old_bundle(out: Path) -> Path:
    """A manifest as mltrail 0.1.0's reference recorder wrote it (docs/pol-format.md of
    that version): the reference spec has an ``arch`` and no ``kind``."""
    out.mkdir(parents=True)
    header = {"format": "mltrail-pol/1",
              "training": {"arch": {"type": "cnn"},
                           "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                         "weight_decay": 0.0, "nesterov": False},
                           "schedule": {"name": "constant"}, "loss": "cross_entropy",
                           "batch_size": 32, "epochs": 1, "n_samples": 1347, "data_seed": 1,
                           "transforms": []},
              "k": 10, "data": {"digest": Z, "inputs": Z, "labels": Z, "n": 1347,
                                "shape": [1347, 1, 8, 8], "dtype": "torch.float32"},
              "init": {"scheme": "uniform_fan_in", "seed": 1, "origin": None},
              "torch": "2.13.0+cpu", "device": "cpu", "prover": None,
              "anchor_artefact": None, "note": None}
    doc = {"header": header, "header_digest": Z, "records": [], "anchors": [],
           "final_model": Z, "complete": True}
    (out / "manifest.json").write_text(json.dumps(doc))
    return out


def test_the_library_refuses_it_as_input_error(tmp_path: Path) -> None:
    b = old_bundle(tmp_path / "old")
    for read in (read_manifest, lambda p: verify_bundle(p, {"x": None})):
        with pytest.raises(InputError, match=r"mltrail 0\.1\.0.*re-record"):
            read(b)


def test_the_installed_command_exits_2_with_one_line_and_records_nothing(
        tmp_path: Path) -> None:
    make_home(tmp_path)
    b = old_bundle(tmp_path / "old")
    env = {**os.environ, "MLTRAIL_PASSWORD": PASSWORD}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EXE, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)

    head = json.loads(run("ledger", "status", "--json").stdout)["head"]
    for args in (("pol", "verify", str(b), "--data", "digits"),
                 ("pol", "verify", str(b), "--data", "digits", "--json"),
                 ("pol", "publish", str(b), "--name", "old")):
        p = run(*args)
        assert p.returncode == 2, (args, p.stdout, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
        assert "mltrail 0.1.0" in lines[0] and "re-record" in lines[0]
        assert "ACCEPTED" not in p.stdout and "REJECTED" not in p.stdout
    assert json.loads(run("ledger", "status", "--json").stdout)["head"] == head
