"""`mltrail run` and `mltrail.activity`: what is recorded, and what is refused."""

from __future__ import annotations

import json
import sys

import pytest

from mltrail.errors import RefusedError
from mltrail.provenance import artefacts, attest
from mltrail.provenance.capture import activity


def _count(open_as) -> int:
    return len(open_as("admin").list_artefacts())


def test_run_records_a_signed_slsa_statement(project, cli, open_as):
    home = project / ".mltrail"
    prep = cli("run", "--step", "prepare", "-k", "dataset", "-i", "raw", "-o", "clean.csv",
               "-p", "seed=3", "-p", "note=hello", "--json", "--", "sh", "-c",
               "echo streamed; cat raw/*.csv raw/sub/*.csv > clean.csv", home=home, cwd=project)
    assert prep.code == 0, prep.err
    assert "streamed" not in prep.out  # the command's output went to the terminal, not JSON
    p = prep.json()
    assert p["inputs"][0]["registered"] is not None  # raw/ was not on the ledger yet
    train = cli("--as", "dev", "run", "--step", "train", "-i", "clean.csv", "-o", "model.bin",
                "-p", "lr=0.1", "--json", "--", sys.executable, "-c",
                "open('model.bin','wb').write(open('clean.csv','rb').read()[::-1])",
                home=home, cwd=project)
    assert train.code == 0, train.err
    t = train.json()
    led = open_as("admin")
    model = led.artefact(t["outputs"][0]["artefact_id"])
    assert model.kind == "model" and model.parents == [p["outputs"][0]["artefact_id"]]
    assert model.owner == open_as("dev").address
    meta = artefacts.metadata(led.home.store, model)
    assert meta and meta["activity"]["step"] == "train"
    env = json.loads(led.home.store.get(meta["activity"]["envelope"]))
    assert attest.signers(env) == [model.owner]
    stmt = attest.statement_of(env)
    assert stmt["predicateType"] == attest.SLSA_PREDICATE
    assert stmt["subject"] == [attest.resource("model.bin", model.content_digest)]
    bd = stmt["predicate"]["buildDefinition"]
    assert bd["externalParameters"] == {"step": "train", "parameters": {"lr": 0.1}}
    assert bd["resolvedDependencies"][0]["digest"]["sha256"] == \
        p["outputs"][0]["digest"].removeprefix("sha256:")
    internal = bd["internalParameters"]
    assert internal["exitCode"] == 0 and internal["command"][0] == sys.executable
    env_info = internal["environment"]
    assert "packages" not in env_info and "host" not in env_info  # local details: opt-in
    assert env_info["packages_digest"].startswith("sha256:") and env_info["python"]
    md = stmt["predicate"]["runDetails"]["metadata"]
    assert md["startedOn"] <= md["finishedOn"]
    # the folder input's per-file manifest is kept, so files can be named later
    raw = led.artefact(p["inputs"][0]["artefact_id"])
    raw_meta = artefacts.metadata(led.home.store, raw)
    assert raw_meta is not None
    assert artefacts.manifest(led.home.store, raw_meta) is not None


def test_failing_command_registers_nothing(project, cli, open_as):
    home = project / ".mltrail"
    before = _count(open_as)
    r = cli("run", "--step", "prep", "-i", "raw", "-o", "out.txt", "--", "sh", "-c",
            "echo partial > out.txt; exit 7", home=home, cwd=project)
    assert r.code == 7 and "nothing registered" in r.err
    assert _count(open_as) == before


def test_input_changed_mid_run_is_refused(project, cli, open_as):
    home = project / ".mltrail"
    before = _count(open_as)
    r = cli("run", "--step", "prep", "-i", "raw", "-o", "out.txt", "--", "sh", "-c",
            "echo 9,9 >> raw/sub/c.csv; echo done > out.txt", home=home, cwd=project)
    assert r.code == 2 and "input changed" in r.err and "raw" in r.err
    assert _count(open_as) == before


def test_missing_input_and_output_are_one_line_errors(project, cli, open_as):
    home = project / ".mltrail"
    r = cli("run", "--step", "x", "-i", "nope.csv", "-o", "o", "--", "true",
            home=home, cwd=project)
    assert r.code == 2 and "input not found: nope.csv" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = cli("run", "--step", "x", "-i", "raw", "-o", "never.txt", "--", "true",
            home=home, cwd=project)
    assert r.code == 2 and "output not found" in r.err
    r = cli("run", "--step", "x", "-i", "raw", "-o", "o", "--", "no-such-program-xyz",
            home=home, cwd=project)
    assert r.code == 2 and "command not found" in r.err
    assert _count(open_as) == 0


def test_python_activity(project, open_as):
    led = open_as("dev")
    (project / "clean.csv").write_text("1,2\n")
    steward = open_as("steward")
    from mltrail.provenance.artefacts import register_path

    ds, _ = register_path(steward, project / "clean.csv", "dataset")
    with activity("train", inputs=[project / "clean.csv"], outputs=[project / "m.bin"],
                  params={"lr": 0.5}, ledger=led) as act:
        (project / "m.bin").write_bytes(b"weights")
        act.params["epochs"] = 2
    assert act.result is not None
    out = act.result.outputs[0]
    model = led.artefact(out["artefact_id"])
    assert model.parents == [ds.artefact_id]  # the existing input is reused, not re-registered
    before = len(led.list_artefacts())
    with pytest.raises(ZeroDivisionError), activity("bad", inputs=[project / "clean.csv"],
                                                    outputs=[project / "m.bin"], ledger=led):
        _ = 1 / 0
    with pytest.raises(RefusedError, match="input changed"), activity(
            "sneaky", inputs=[project / "clean.csv"], outputs=[project / "m.bin"], ledger=led):
        (project / "clean.csv").write_text("poisoned\n")
    assert len(led.list_artefacts()) == before
