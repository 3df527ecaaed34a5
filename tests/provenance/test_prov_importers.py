"""Importers against a real DVC repository and a real local MLflow store, made here."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mltrail.provenance import artefacts, attest

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
dvc_repo = pytest.importorskip("dvc.repo")
mlflow = pytest.importorskip("mlflow")


def _statement(led, artefact_id):
    meta = artefacts.metadata(led.home.store, led.artefact(artefact_id))
    return attest.statement_of(json.loads(led.home.store.get(meta["activity"]["envelope"])))


def test_dvc_lock_import(tmp_path, home, cli, open_as, monkeypatch):
    repo_dir = tmp_path / "repo"
    repo_dir.mkdir()
    monkeypatch.chdir(repo_dir)
    repo = dvc_repo.Repo.init(str(repo_dir), no_scm=True)
    (repo_dir / "raw.csv").write_text("1,2\n3,4\n")
    (repo_dir / "prep.py").write_text(
        "open('clean.csv', 'w').write(open('raw.csv').read().upper() * 2)\n")
    (repo_dir / "params.yaml").write_text("seed: 4\n")
    repo.stage.add(name="prepare", cmd=f"{sys.executable} prep.py",
                   deps=["prep.py", "raw.csv"], outs=["clean.csv"], params=["seed"])
    repo.stage.add(name="train", cmd="sort -r clean.csv > model.bin", deps=["clean.csv"],
                   outs=["model.bin"])
    repo.reproduce()
    monkeypatch.chdir(tmp_path)
    lock = repo_dir / "dvc.lock"
    r = cli("import", "dvc", str(lock), "--stage-kind", "train=model", "--json",
            home=home.root)
    assert r.code == 0, r.err
    stages = {s["step"]: s for s in r.json()["stages"]}
    assert list(stages) == ["prepare", "train"]
    led = open_as("admin")
    clean = led.artefact(stages["prepare"]["outputs"][0]["artefact_id"])
    model = led.artefact(stages["train"]["outputs"][0]["artefact_id"])
    raw_id = stages["prepare"]["inputs"][0]["artefact_id"]
    assert clean.kind == "dataset" and clean.parents == [raw_id]
    assert model.kind == "model" and model.parents == [clean.id]
    stmt = _statement(led, clean.id)
    bd = stmt["predicate"]["buildDefinition"]
    assert bd["externalParameters"]["parameters"] == {"seed": 4}
    assert bd["internalParameters"]["dvc"]["cmd"].endswith("prep.py")
    assert "prep.py" in {Path(d["name"]).name for d in bd["resolvedDependencies"]}
    assert not led.find_by_digest(artefacts.Hashed.of(repo_dir / "prep.py").digest)
    # a file changed after 'dvc repro': its md5 no longer matches dvc.lock, refused
    (repo_dir / "raw.csv").write_text("poisoned\n")
    bad = cli("import", "dvc", str(lock), home=home.root)
    assert bad.code == 2 and "raw.csv changed since dvc.lock" in bad.err
    (repo_dir / "dvc.lock").write_text("stages: [1, 2]\n")
    assert cli("import", "dvc", str(lock), home=home.root).code == 2


def test_mlflow_run_import(tmp_path, home, cli, open_as):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "artifacts"))
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    mlflow.set_tracking_uri(uri)
    try:
        with pytest.warns(UserWarning), mlflow.start_run(experiment_id=exp,
                                                         run_name="fit") as run:
            mlflow.log_param("lr", 0.05)
            mlflow.log_metric("acc", 0.9)
            (tmp_path / "weights.bin").write_bytes(b"w" * 100)
            mlflow.log_artifact(str(tmp_path / "weights.bin"))
            ds = MetaDataset(resolve_dataset_source(str(data)), name="train")
            mlflow.log_input(ds, context="training")
        with mlflow.start_run(experiment_id=exp) as failed:
            mlflow.log_artifact(str(tmp_path / "weights.bin"))
        client.set_terminated(failed.info.run_id, "FAILED")
    finally:
        mlflow.set_tracking_uri("")
    r = cli("import", "mlflow", run.info.run_id, "--tracking-uri", uri, "--json",
            home=home.root)
    assert r.code == 0, r.err
    res = r.json()
    assert res["step"] == "fit"
    led = open_as("admin")
    model = led.artefact(res["outputs"][0]["artefact_id"])
    ds_art = led.artefact(res["inputs"][0]["artefact_id"])
    assert model.parents == [ds_art.id] and ds_art.content_digest == \
        artefacts.Hashed.of(data).digest
    bd = _statement(led, model.id)["predicate"]["buildDefinition"]
    assert bd["externalParameters"]["parameters"] == {"lr": "0.05"}
    assert bd["internalParameters"]["mlflow"]["metrics"] == {"acc": 0.9}
    bad = cli("import", "mlflow", failed.info.run_id, "--tracking-uri", uri, home=home.root)
    assert bad.code == 2 and "FAILED" in bad.err
    assert cli("import", "mlflow", "0" * 32, "--tracking-uri", uri, home=home.root).code == 2
