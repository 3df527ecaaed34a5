"""Lineage pictures and the PROV / in-toto exports, read back by their own libraries."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from in_toto.models.metadata import Envelope
from in_toto_attestation.v1 import statement as ita_statement
from in_toto_attestation.v1 import statement_pb2
from prov.model import ProvDocument

from mltrail.provenance import attest


@pytest.fixture
def chain(project, cli):
    """raw/ -> prepare -> clean.csv -> train -> model.bin, then one transition."""
    home = project / ".mltrail"
    p = cli("run", "--step", "prepare", "-k", "dataset", "-i", "raw", "-o", "clean.csv",
            "--json", "--", "sh", "-c", "cat raw/*.csv > clean.csv", home=home,
            cwd=project).json()
    t = cli("--as", "dev", "run", "--step", "train", "-i", "clean.csv", "-o", "model.bin",
            "--json", "--", "sh", "-c", "cp clean.csv model.bin", home=home,
            cwd=project).json()
    model = t["outputs"][0]["artefact_id"]
    assert cli("--as", "dev", "transition", model, "trained", home=home).code == 0
    return {"home": home, "raw": p["inputs"][0]["artefact_id"],
            "clean": p["outputs"][0]["artefact_id"], "model": model}


def test_prov_round_trip(chain, cli, project):
    out = cli("export", chain["model"], "-f", "prov-json", home=chain["home"])
    assert out.code == 0, out.err
    doc = ProvDocument.deserialize(content=out.out, format="json")
    again = ProvDocument.deserialize(content=doc.serialize(format="json"), format="json")
    assert doc == again
    records = {type(r).__name__ for r in doc.get_records()}
    assert {"ProvEntity", "ProvActivity", "ProvAgent", "ProvGeneration", "ProvUsage",
            "ProvDerivation", "ProvAssociation", "ProvAttribution"} <= records
    entities = {str(e.identifier).split(":", 1)[-1] for e in doc.get_records()
                if type(e).__name__ == "ProvEntity"}
    assert entities == {chain["model"], chain["clean"], chain["raw"]}
    labels = {str(a.label) for a in doc.get_records() if type(a).__name__ == "ProvActivity"}
    assert {"prepare", "train"} <= labels
    provn = cli("export", chain["model"], "-f", "prov-n", home=chain["home"]).out
    assert provn.startswith("document") and "wasGeneratedBy" in provn


def test_intoto_bundle_round_trip(chain, cli):
    out = cli("export", chain["model"], "-f", "in-toto", home=chain["home"])
    lines = out.out.splitlines()
    assert len(lines) == 2  # one signed statement per step in the ancestry
    steps = []
    for line in lines:
        env = Envelope.from_dict(json.loads(line))  # the in-toto package's DSSE model
        assert env.pae() == attest.pae(env.payload_type, env.payload)
        pb = json_format.Parse(env.payload, statement_pb2.Statement())
        ita_statement.Statement.copy_from_pb(pb).validate()
        assert pb.predicate_type == attest.SLSA_PREDICATE
        steps.append(json.loads(env.payload)["predicate"]["buildDefinition"]
                     ["externalParameters"]["step"])
    assert steps == ["prepare", "train"]


def test_lineage_formats(chain, cli, project):
    home = chain["home"]
    tree = cli("lineage", chain["model"], "--up", home=home)
    assert tree.code == 0 and "train" in tree.out and "prepare" in tree.out
    g = cli("lineage", chain["raw"], "--down", "-f", "json", home=home).json()
    assert {e["activity"] for e in g["edges"]} == {"prepare", "train"}
    assert {n["kind"] for n in g["nodes"]} == {"dataset", "model"}
    dot = cli("lineage", chain["model"], "--up", "-f", "dot", home=home).out
    assert dot.startswith("digraph") and 'label="train"' in dot
    png = cli("lineage", chain["model"], "--up", "-f", "png", "-o", str(project / "l.png"),
              home=home)
    assert png.code == 0, png.err
    assert (project / "l.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = cli("lineage", chain["model"], "-f", "svg", "-o", str(project / "l.svg"), home=home)
    assert svg.code == 0 and b"<svg" in (project / "l.svg").read_bytes()
    assert cli("lineage", chain["model"], "-f", "gif", home=home).code == 2
