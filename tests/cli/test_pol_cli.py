"""`mltrail pol` end to end through the real entry point: exit codes, JSON, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _one_thread():
    """Two xdist workers share two cores: keep torch to one thread each."""
    from mltrail.reference import pinned_threads

    with pinned_threads(1):
        yield


@pytest.fixture
def project(tmp_path: Path, cli):
    assert cli("init", cwd=tmp_path).code == 0
    for name, roles in {"alice": ["data_steward", "model_developer"], "victor": ["verifier"],
                        "mallory": ["model_developer"]}.items():
        assert cli("id", "create", name, cwd=tmp_path).code == 0
        for role in roles:
            assert cli("roles", "grant", name, role, cwd=tmp_path).code == 0
    return tmp_path


def test_train_verify_forge_dispute(project: Path, cli) -> None:
    r = cli("--as", "alice", "pol", "train", "b", "--epochs", "2", "--k", "20", "--json",
            cwd=project)
    assert r.code == 0, r.err
    t = r.json()
    assert {"model_id", "tx_hash", "block", "gas_used", "final_model"} <= set(t)
    assert len(t["anchors"]) == 2 and all(a["tx_hash"] for a in t["anchors"])
    assert cli("show", t["model_id"], "--json", cwd=project).json()["state"] == "trained"
    assert t["init_seed_block"] is not None  # the init seed was fixed by a block

    # the public challenge needs a block after the publication: refused until it exists
    early = cli("--as", "victor", "pol", "verify", "--model", t["model_id"], cwd=project)
    assert early.code == 2 and "not mined yet" in early.err
    assert cli("--as", "mallory", "pol", "forge", "b", "forged", cwd=project).code == 0
    p = cli("--as", "mallory", "pol", "publish", "forged", "--json", cwd=project)
    assert p.code == 0, p.err
    # no --data: the proof's dataset artefact names the reference data, with those bytes
    v = cli("--as", "victor", "pol", "verify", "--model", t["model_id"], "--json",
            "--report", "r.json", "--html", "r.html", cwd=project)
    assert v.code == 0, v.err
    out = v.json()
    assert out["verdict"] == "accepted" and out["ledger"]["recorded"]
    assert out["init_origin"] == "ledger" and out["challenge"]["source"] == "ledger"
    assert {"tx_hash", "block", "gas_used"} <= set(out["ledger"])
    assert json.loads((project / "r.json").read_text())["verdict"] == "accepted"
    assert (project / "r.html").read_text().startswith("<!doctype html>")
    assert cli("show", t["model_id"], "--json", cwd=project).json()["state"] == "verified"
    # issue 18: a fresh verifier secret by default (the prover cannot know the draw), which
    # the report reveals, so anyone recomputes the same challenge with it
    secret = out["challenge"]["secret"]
    assert secret and len(secret) == 64
    again = cli("--as", "victor", "pol", "verify", "--model", t["model_id"], "--no-record",
                "--secret", secret, "--json", cwd=project)
    assert again.json()["verifier_seed"] == out["verifier_seed"]  # the same challenge

    f = cli("--as", "victor", "pol", "verify", "--model", p.json()["model_id"], "--data",
            "digits", cwd=project)
    assert f.code == 1
    assert "proof rejected" in f.err and "Traceback" not in f.err
    assert cli("show", p.json()["model_id"], "--json", cwd=project).json()["state"] == \
        "rejected"

    d = cli("pol", "dispute", p.json()["model_id"], "--data", "digits", "--json", cwd=project)
    assert d.code == 0, d.err
    dec = d.json()
    assert dec["winner"]["model_id"] == t["model_id"]
    assert len(dec["claims"]) == 2 and any("wins" in line for line in dec["reasoning"])


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, cli) -> None:
    r = cli("pol", "train", str(tmp_path / "b"), "--epochs", "1", "--k", "43", "--no-ledger",
            "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    b = tmp_path / "b"
    assert cli("pol", "verify", str(b), "--data", "digits", cwd=tmp_path).code == 0  # accepted
    cases = [
        (["pol", "verify", str(b)], 2, "--data is required"),
        (["pol", "verify", str(tmp_path / "missing"), "--data", "digits"], 2, "no proof bundle"),
        (["pol", "verify", str(b), "--data", str(tmp_path / "nope.safetensors")], 2,
         "no data file"),
        (["pol", "train", str(b), "--no-ledger"], 2, "not empty"),
        (["pol", "train", str(tmp_path / "c"), "--arch", "transformer", "--no-ledger"], 2,
         "--arch"),
    ]
    for args, code, text in cases:
        extra = ["--report", str(tmp_path / "rep.json")] if args[1] == "verify" else []
        res = cli(*args, *extra, cwd=tmp_path)
        assert res.code == code, (args, res.err)
        assert text in res.err and "Traceback" not in res.err
        assert len(res.err.strip().splitlines()) <= 2
    assert not (tmp_path / "rep.json").exists() and not (tmp_path / "c").exists()
    # a corrupt manifest, and data that are not the committed data
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text('{"header": 1}')
    res = cli("pol", "verify", str(bad), "--data", "digits", cwd=tmp_path)
    assert res.code == 2 and "malformed proof manifest" in res.err
    assert cli("pol", "data", str(tmp_path / "d.safetensors"), cwd=tmp_path).code == 0
    from safetensors.torch import load_file, save_file

    t = load_file(tmp_path / "d.safetensors")
    t["y"][:5] = 0
    save_file(t, tmp_path / "other.safetensors")
    res = cli("pol", "verify", str(b), "--data", str(tmp_path / "other.safetensors"),
              cwd=tmp_path)
    # issue 18: data other than the committed bytes are the verifier's input error
    assert res.code == 2 and "is not the committed" in res.err
    res = cli("pol", "verify", str(b), "--data", str(tmp_path / "d.safetensors"), "--json",
              cwd=tmp_path)
    assert res.code == 0 and res.json()["verdict"] == "accepted"
    # pack / unpack round trip; a tar is not a folder
    assert cli("pol", "pack", str(b), str(tmp_path / "b.tar"), cwd=tmp_path).code == 0
    res = cli("pol", "verify", str(tmp_path / "b.tar"), "--data", "digits", cwd=tmp_path)
    assert res.code == 2 and "pol unpack" in res.err
    assert cli("pol", "unpack", str(tmp_path / "b.tar"), str(tmp_path / "u"),
               cwd=tmp_path).code == 0
    res = cli("pol", "inspect", str(tmp_path / "u"), "--json", cwd=tmp_path)
    assert res.code == 0 and res.json()["complete"] is True
    res = cli("pol", "inspect", str(tmp_path / "u"), cwd=tmp_path)  # lines for people
    assert res.code == 0 and "{" not in res.out and "training." in res.out
    assert any(ln.split()[:2] == ["complete", "True"] for ln in res.out.splitlines())


def test_failed_train_leaves_nothing_and_the_next_run_works(tmp_path: Path, cli) -> None:
    """A run that fails part way (here: an optimizer the replay cannot honour) leaves no
    partial bundle behind, so the same command with a fix succeeds."""
    out = tmp_path / "b"
    r = cli("pol", "train", str(out), "--epochs", "1", "--k", "43", "--no-ledger",
            "--optimizer", "rmsprop", cwd=tmp_path)
    assert r.code == 2 and "Traceback" not in r.err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if "partial" in p.name]
    r = cli("pol", "train", str(out), "--epochs", "1", "--k", "43", "--no-ledger", "--json",
            cwd=tmp_path)
    assert r.code == 0, r.err and (out / "manifest.json").is_file()


def test_verify_on_a_terminal_shows_each_segment(tmp_path: Path, cli, monkeypatch) -> None:
    """On a terminal, `pol verify` prints a line per replayed segment with its error (the
    bar's total is the challenge's draw); under --json, nothing on stderr."""
    r = cli("pol", "train", str(tmp_path / "b"), "--epochs", "1", "--k", "43", "--no-ledger",
            "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    quiet = cli("pol", "verify", str(tmp_path / "b"), "--data", "digits", "--seed", "3",
                "--json", cwd=tmp_path)
    assert quiet.code == 0 and quiet.err == ""
    shown = cli("pol", "verify", str(tmp_path / "b"), "--data", "digits", "--seed", "3",
                cwd=tmp_path)
    assert shown.code == 0, shown.err
    lines = re.findall(r"segment #\d+ steps \d+-\d+[^\n\r]*", shown.err)
    segs = quiet.json()["segments"]
    assert len(lines) == len(segs) and segs, shown.err
    for s in segs:
        assert any(f"#{s['index']} steps {s['start_step']}-{s['end_step']}" in ln
                   and "error" in ln for ln in lines), (s, lines)
    assert f"{len(segs)}/{len(segs)}" in shown.err  # the bar knew the challenge's draw
