"""The cheater's tampers and forgeries (mltrail.testing.provenance_tamper) are all caught,
the file named; a benign touch is not flagged. The rates over many seeds: bench/capture.py."""

from __future__ import annotations

import json
import random

import pytest

from mltrail.errors import MltrailError
from mltrail.provenance.artefacts import register_path
from mltrail.provenance.verify import verify_envelope, verify_path
from mltrail.testing.provenance_tamper import BENIGN, FORGERIES, TAMPERS


def _folder(root, rng):
    for i in range(6):
        (root / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 2}" / f"f{i}.bin").write_bytes(rng.randbytes(rng.randrange(1, 300)))


@pytest.mark.parametrize("name", sorted(TAMPERS) + sorted(BENIGN))
def test_tamper_caught_and_named(name, tmp_path, home, open_as):
    led = open_as("admin")
    rng = random.Random(name)
    root = tmp_path / "data"
    _folder(root, rng)
    reg, _ = register_path(led, root, "dataset")
    touched = {**TAMPERS, **BENIGN}[name](root, rng)
    check = verify_path(led, root, reg.artefact_id)
    if name in BENIGN:
        assert check.ok
        return
    assert not check.ok and check.diff is not None
    named = set(check.diff.added + check.diff.removed + check.diff.changed)
    assert {t for t in touched.split("<->")} <= named | {n + ".moved" for n in named}


def test_forgeries_rejected(project, cli, open_as):
    home = project / ".mltrail"
    r = cli("run", "--step", "s", "-i", "raw", "-o", "o.txt", "--json", "--", "sh", "-c",
            "echo 1 > o.txt", home=home, cwd=project).json()
    led = open_as("admin")
    from mltrail.provenance import artefacts

    meta = artefacts.metadata(led.home.store, led.artefact(r["outputs"][0]["artefact_id"]))
    assert meta is not None
    env = json.loads(led.home.store.get(meta["activity"]["envelope"]))
    target = project / "env.json"
    target.write_text(json.dumps(env))
    assert verify_envelope(led, target)["ok"]
    for name, forge in FORGERIES.items():
        target.write_text(json.dumps(forge(env, random.Random(name))))
        with pytest.raises(MltrailError):
            verify_envelope(led, target)
