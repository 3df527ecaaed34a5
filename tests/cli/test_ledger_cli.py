"""The ledger CLI end to end: output, --json, exit codes, and nothing written on bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path, cli):
    """A project folder with an initialised home, alice as developer and steward."""
    r = cli("init", "--json", cwd=tmp_path)
    assert r.code == 0, r.err
    assert cli("id", "create", "alice", cwd=tmp_path).code == 0
    for role in ("model_developer", "data_steward"):
        assert cli("roles", "grant", "alice", role, cwd=tmp_path).code == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "model.bin").write_bytes(b"\x00weights")
    return tmp_path


def _head(cli, cwd) -> int:
    return int(cli("ledger", "status", "--json", cwd=cwd).json()["head"])


def test_walkthrough_with_json(project, cli):
    ds = cli("--as", "alice", "register", "data", "--kind", "dataset", "--json", cwd=project)
    assert ds.code == 0, ds.err
    d = ds.json()
    assert {"tx_hash", "block", "gas_used", "artefact_id", "content_digest"} <= set(d)
    m = cli("--as", "alice", "register", "model.bin", "-k", "model", "--parent",
            d["artefact_id"][:10], "--json", cwd=project).json()
    t = cli("--as", "alice", "transition", m["artefact_id"], "trained", "--json", cwd=project)
    assert t.code == 0 and t.json()["to"] == "trained" and t.json()["gas_used"] > 0
    shown = cli("show", m["artefact_id"][:12], "--json", cwd=project).json()
    assert shown["state"] == "trained" and shown["parents"] == [d["artefact_id"]]
    hist = cli("history", m["artefact_id"], "--json", cwd=project).json()
    assert [e["event"] for e in hist["events"]] == ["Registered", "Transitioned"]
    lin = cli("lineage", d["artefact_id"], "--json", cwd=project).json()
    assert [a["id"] for a in lin["descendants"]] == [m["artefact_id"]]
    human = cli("lineage", m["artefact_id"], cwd=project)
    assert "ancestors" in human.out and "dataset" in human.out
    assert [a["kind"] for a in cli("list", "-k", "model", "--json", cwd=project).json()] == [
        "model"]
    assert len(cli("list", "--limit", "1", "--json", cwd=project).json()) == 1
    assert cli("ledger", "check", cwd=project).code == 0
    assert cli("ledger", "reindex", "--json", cwd=project).json()["events"] >= 4


@pytest.mark.parametrize("args,needle", [
    (["show", "0x" + "ab" * 32], "unknown artefact"),
    (["show", "zz-not-hex"], "unknown artefact"),  # not hex: looked up as a name
    (["show", "0xzz"], "not an artefact id"),
    (["register", "missing.txt", "--kind", "dataset"], "path does not exist"),
    (["register", "model.bin", "--kind", "spaceship"], "unknown kind"),
    (["roles", "grant", "alice", "emperor"], "unknown role"),
    (["--as", "nobody", "register", "model.bin", "--kind", "model"], "no identity"),
])
def test_bad_input_exits_2_with_one_line(project, cli, args, needle):
    head = _head(cli, project)
    r = cli(*args, cwd=project)
    assert r.code == 2, (r.out, r.err)
    assert needle in r.err
    assert len(r.err.strip().splitlines()) <= 2  # message (+ optional hint), no traceback
    assert "Traceback" not in r.err
    assert _head(cli, project) == head


def test_refusals_exit_2_and_write_nothing(project, cli):
    m = cli("--as", "alice", "register", "model.bin", "-k", "model", "--json",
            cwd=project).json()["artefact_id"]
    head = _head(cli, project)
    illegal = cli("--as", "alice", "transition", m, "deployed", cwd=project)
    assert illegal.code == 2 and "transition not allowed" in illegal.err
    cli("--as", "alice", "transition", m, "trained", cwd=project)
    head += 1
    role = cli("--as", "alice", "transition", m, "verified", cwd=project)
    assert role.code == 2 and "missing role" in role.err and "verifier" in role.err
    wrong = cli("--as", "alice", "transition", m, "evaluated", cwd=project,
                env={"MLTRAIL_PASSWORD": "wrong"})
    assert wrong.code == 2 and "wrong password" in wrong.err
    again = cli("--as", "alice", "register", "model.bin", "-k", "model", cwd=project)
    assert again.code == 2 and "already registered" in again.err
    assert _head(cli, project) == head


def test_malformed_lifecycle_names_line_and_writes_nothing(tmp_path, cli):
    bad = tmp_path / "lc.yaml"
    bad.write_text("roles: [a, b]\nkinds:\n  model:\n    initial: nowhere\n"
                   "    register: [a]\n    states: [x, y]\n")
    r = cli("init", "--lifecycle", str(bad), cwd=tmp_path)
    assert r.code == 2 and "lc.yaml:4" in r.err and "initial state" in r.err
    assert not (tmp_path / ".mltrail").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lc.yaml"]
    bad.write_text("roles: [a\n")
    r = cli("init", "--lifecycle", str(bad), cwd=tmp_path)
    assert r.code == 2 and "malformed lifecycle" in r.err


def test_custom_lifecycle_and_home_discovery(tmp_path, cli):
    lc = tmp_path / "team.yaml"
    lc.write_text("roles: [lead, dev]\nterminal: gone\nkinds:\n  notebook:\n"
                  "    initial: draft\n    register: [dev, lead]\n"
                  "    states: [draft, final, gone]\n"
                  "    transitions:\n      - {from: draft, to: final, roles: [lead]}\n"
                  "      - {from: '*', to: gone, roles: [lead]}\n")
    assert cli("init", "--lifecycle", str(lc), cwd=tmp_path).code == 0
    nb = tmp_path / "nb.ipynb"
    nb.write_text("{}")
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    r = cli("register", str(nb), "--kind", "notebook", "--json", cwd=sub)  # found by walking up
    assert r.code == 0, r.err
    aid = r.json()["artefact_id"]
    assert cli("transition", aid, "final", cwd=sub).code == 0
    assert cli("transition", aid, "gone", cwd=sub).code == 0
    r = cli("transition", aid, "draft", cwd=sub)
    assert r.code == 2 and "revoked" in r.err


def test_not_in_a_home(tmp_path, cli):
    r = cli("list", cwd=tmp_path, env={"MLTRAIL_HOME": ""})
    assert r.code == 2 and "not inside an mltrail home" in r.err


def test_real_process_exit_code(project):
    """One run through the installed console script, as a user would."""
    env = dict(os.environ, MLTRAIL_HOME=str(project / ".mltrail"))
    exe = Path(sys.executable).with_name("mltrail")
    p = subprocess.run([str(exe), "show", "0x" + "cd" * 32], capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 2 and "unknown artefact" in p.stderr and "Traceback" not in p.stderr


def test_import_key(project, cli):
    from testkit import ANVIL_KEY

    key = project / "key.hex"
    key.write_text("0x" + ANVIL_KEY + "\n")
    r = cli("id", "create", "funded", "--import-key", str(key), "--json", cwd=project)
    assert r.code == 0, r.err
    assert r.json()["address"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    key.write_text("not hex")
    r = cli("id", "create", "broken", "--import-key", str(key), cwd=project)
    assert r.code == 2 and "does not hold a hex private key" in r.err
    r = cli("id", "create", "funded", cwd=project)
    assert r.code == 2 and "already exists" in r.err
    ids = cli("id", "list", "--json", cwd=project).json()
    assert [i["name"] for i in ids] == ["admin", "alice", "funded"]


def test_markup_in_input_and_edited_lifecycle(project, cli):
    r = cli("show", "[/bold]", cwd=project)
    assert r.code == 2 and "[/bold]" in r.err and "Traceback" not in r.err
    lc = project / ".mltrail" / "lifecycle.yaml"
    lc.write_text(lc.read_text().replace("operator", "op"))
    r = cli("list", cwd=project)
    assert r.code == 2 and "edited" in r.err


def test_oversized_lifecycle_is_refused_before_init(tmp_path, cli):
    from mltrail.lifecycle import DEFAULT_PATH

    big = tmp_path / "big.yaml"
    big.write_text(DEFAULT_PATH.read_text() + "#" * 17_000 + "\n")
    r = cli("init", "--lifecycle", str(big), cwd=tmp_path)
    assert r.code == 2 and "at most 16384" in r.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]
