"""What an export shows: no local details unless asked for, no empty bundle, names for
agents, and DVC outputs registered by what they are."""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from pathlib import Path

from prov.model import ProvDocument

from mltrail.provenance import artefacts, attest


def _statement(led, artefact_id):
    meta = artefacts.metadata(led.home.store, led.artefact(artefact_id))
    return attest.statement_of(json.loads(led.home.store.get(meta["activity"]["envelope"])))


def _run(cli, project, *extra):
    r = cli("run", "--step", "prepare", "-k", "dataset", "-i", str(project / "raw"), "-o",
            "clean.csv", *extra, "--json", "--", "sh", "-c", "cat raw/*.csv > clean.csv",
            home=project / ".mltrail", cwd=project)
    assert r.code == 0, r.err
    return r.json()


def test_statement_leaves_local_details_out_by_default(project, cli, open_as):
    r = _run(cli, project)
    text = json.dumps(_statement(open_as("admin"), r["outputs"][0]["artefact_id"]))
    stmt = json.loads(text)
    bd = stmt["predicate"]["buildDefinition"]
    assert str(project) not in text  # the input was given as an absolute path
    assert socket.gethostname() not in text and f'"{getpass.getuser()}"' not in text
    env = bd["internalParameters"]["environment"]
    assert set(env) == {"python", "implementation", "platform", "packages_digest"}
    assert "workdir" not in bd["internalParameters"]
    dep = bd["resolvedDependencies"][0]
    assert dep["name"] == "raw" and "uri" not in dep
    # digests stay what they were: the subject and the dependency are the artefacts'
    assert stmt["subject"][0] == attest.resource("clean.csv", r["outputs"][0]["digest"])
    assert dep["digest"]["sha256"] == r["inputs"][0]["digest"].removeprefix("sha256:")


def test_capture_env_puts_them_back(project, cli, open_as):
    r = _run(cli, project, "--capture-env")
    stmt = _statement(open_as("admin"), r["outputs"][0]["artefact_id"])
    bd = stmt["predicate"]["buildDefinition"]
    env = bd["internalParameters"]["environment"]
    assert env["host"] == socket.gethostname() and env["user"] == getpass.getuser()
    assert any(p.startswith("eth-account==") for p in env["packages"])
    assert env["packages_digest"] == "sha256:" + hashlib.sha256(
        "\n".join(env["packages"]).encode()).hexdigest()
    dep = bd["resolvedDependencies"][0]
    assert dep["name"] == str(project / "raw") and dep["uri"] == (project / "raw").as_uri()
    assert bd["internalParameters"]["workdir"] == str(project)


def test_empty_in_toto_export_is_an_error_and_writes_nothing(project, cli):
    home = project / ".mltrail"
    reg = cli("register", str(project / "raw"), "-k", "dataset", "--json", home=home)
    assert reg.code == 0, reg.err
    aid = reg.json()["artefact_id"]
    out = project / "empty.intoto.jsonl"
    r = cli("export", aid, "-f", "in-toto", "-o", str(out), home=home)
    assert r.code == 2 and "no captured step" in r.err and len(r.err.strip().splitlines()) == 1
    assert not out.exists() and r.out == ""
    # PROV of the same artefact is not empty: the entity and its registrant
    assert cli("export", aid, "-f", "prov-json", home=home).code == 0


def test_prov_agents_carry_identity_names(project, cli, open_as):
    r = _run(cli, project)
    out = cli("export", r["outputs"][0]["artefact_id"], "-f", "prov-json",
              home=project / ".mltrail")
    doc = ProvDocument.deserialize(content=out.out, format="json")
    agents = [a for a in doc.get_records() if type(a).__name__ == "ProvAgent"]
    admin = open_as("admin").address
    labels = {str(a.label) for a in agents}
    assert "admin" in labels and admin not in labels
    assert any(str(a.identifier).endswith(admin) for a in agents)  # the id stays the address


def _lock(repo: Path, stages: dict) -> Path:
    import yaml

    def entry(p: str) -> dict:
        return {"path": p, "md5": hashlib.md5((repo / p).read_bytes()).hexdigest()}

    doc = {"schema": "2.0", "stages": {
        name: {"cmd": "x", "deps": [entry(d) for d in st["deps"]],
               "outs": [entry(o) for o in st["outs"]]} for name, st in stages.items()}}
    lock = repo / "dvc.lock"
    lock.write_text(yaml.safe_dump(doc))
    return lock


def test_dvc_model_outputs_are_models(tmp_path, home, cli, open_as):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, text in {"raw.csv": "1,2\n", "clean.csv": "1;2\n", "model.pkl": "w",
                       "train.py": "pass\n", "notes.csv": "n\n"}.items():
        (repo / name).write_text(text)
    lock = _lock(repo, {"prepare": {"deps": ["raw.csv"], "outs": ["clean.csv"]},
                        "train": {"deps": ["clean.csv", "train.py"],
                                  "outs": ["model.pkl", "notes.csv"]}})
    r = cli("import", "dvc", str(lock), "--json", home=home.root)
    assert r.code == 0, r.err
    kinds = {o["path"].rsplit("/", 1)[-1]: o["kind"]
             for st in r.json()["stages"] for o in st["outputs"]}
    assert kinds == {"clean.csv": "dataset", "model.pkl": "model", "notes.csv": "dataset"}
    led = open_as("admin")
    ids = {o["path"].rsplit("/", 1)[-1]: o["artefact_id"]
           for st in r.json()["stages"] for o in st["outputs"]}
    assert led.artefact(ids["model.pkl"]).kind == "model"


def test_dvc_out_kind_overrides(tmp_path, home, cli):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "raw.csv").write_text("1\n")
    (repo / "weights.bin").write_text("w\n")
    lock = _lock(repo, {"train": {"deps": ["raw.csv"], "outs": ["weights.bin"]}})
    bad = cli("import", "dvc", str(lock), "--out-kind", "nope.bin=model", home=home.root)
    assert bad.code == 2 and "names no output" in bad.err
    r = cli("import", "dvc", str(lock), "--out-kind", "weights.bin=model", "--json",
            home=home.root)
    assert r.code == 0, r.err
    assert r.json()["stages"][0]["outputs"][0]["kind"] == "model"
