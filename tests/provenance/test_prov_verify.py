"""`mltrail verify`: one flipped byte is caught, the file named, exit 1; DSSE checks."""

from __future__ import annotations

import base64
import json

from eth_account import Account

from mltrail.provenance import attest
from testkit import PASSWORD


def _flip(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipped_byte_in_file_and_in_folder(project, cli):
    home = project / ".mltrail"
    (project / "model.bin").write_bytes(bytes(range(256)) * 8)
    f = cli("register", "model.bin", "-k", "model", "--json", home=home, cwd=project).json()
    d = cli("register", "raw", "-k", "dataset", "--json", home=home, cwd=project).json()
    ok = cli("verify", "raw", "--json", home=home, cwd=project)
    assert ok.code == 0, ok.err
    check = ok.json()["checks"][0]
    assert check["artefact"]["id"] == d["artefact_id"] and check["registered_by"].startswith(
        "admin")
    _flip(project / "model.bin")
    bad = cli("verify", "model.bin", f["artefact_id"], home=home, cwd=project)
    assert bad.code == 1 and "changed model.bin" in bad.err
    # without an id: nothing matches the new bytes, found by where it was registered
    bad = cli("verify", "model.bin", home=home, cwd=project)
    assert bad.code == 1 and f["artefact_id"] in bad.err
    _flip(project / "raw" / "sub" / "c.csv")
    (project / "raw" / "b.csv").unlink()
    (project / "raw" / "new.csv").write_text("1\n")
    bad = cli("verify", "raw", "--json", home=home, cwd=project)
    assert bad.code == 1
    diff = bad.json()["checks"][0]["diff"]
    assert diff == {"changed": ["sub/c.csv"], "removed": ["b.csv"], "added": ["new.csv"]}
    from mltrail.config import Home
    from mltrail.ledger.client import Ledger

    with Ledger.open(Home(home), password=PASSWORD) as led:  # a location nobody can find
        led.register("dataset", "sha256:" + "ab" * 32, metadata={"path": "digits"})
    everything = cli("verify", "--all", "--json", home=home, cwd=project)
    assert everything.code == 1 and len(everything.json()["checks"]) == 2
    assert [s["reason"] for s in everything.json()["skipped"]] == ["relative path recorded"]
    assert cli("verify", home=home, cwd=project).code == 2  # nothing to check named
    assert cli("verify", "missing.bin", home=home, cwd=project).code == 2


def test_all_counts_skipped_artefacts_apart(project, cli):
    """An artefact with no recorded path is said as skipped, never counted as matching;
    skips alone are not a mismatch (exit 0)."""
    home = project / ".mltrail"
    (project / "model.bin").write_bytes(b"weights")
    cli("register", "model.bin", "-k", "model", "--json", home=home, cwd=project)
    from mltrail.config import Home
    from mltrail.ledger.client import Ledger

    with Ledger.open(Home(home), password=PASSWORD) as led:  # registered with no location
        led.register("dataset", "sha256:" + "cd" * 32)
    res = cli("verify", "--all", home=home, cwd=project)
    assert res.code == 0, res.err
    assert "1 of 2 artefacts match, 1 skipped: no path recorded" in res.out
    data = cli("verify", "--all", "--json", home=home, cwd=project).json()
    assert data["ok"] and len(data["checks"]) == 1
    assert data["skipped"][0]["reason"] == "no path recorded"


def test_dsse_statement_checked_against_chain(project, cli):
    home = project / ".mltrail"
    r = cli("run", "--step", "s", "-i", "raw", "-o", "o.txt", "--json", "--", "sh", "-c",
            "echo 1 > o.txt", home=home, cwd=project).json()
    exp = cli("export", r["outputs"][0]["artefact_id"], "-f", "in-toto", home=home,
              cwd=project)
    env = json.loads(exp.out.splitlines()[0])
    (project / "s.json").write_text(json.dumps(env))
    good = cli("verify", "--statement", "s.json", "--json", home=home, cwd=project)
    assert good.code == 0 and good.json()["subjects"][0]["artefact_ids"] == [
        r["outputs"][0]["artefact_id"]]
    # payload changed after signing
    stmt = attest.statement_of(env)
    stmt["predicate"]["buildDefinition"]["externalParameters"]["parameters"] = {"lr": 9}
    forged = dict(env, payload=base64.b64encode(json.dumps(stmt).encode()).decode())
    (project / "f.json").write_text(json.dumps(forged))
    assert cli("verify", "--statement", "f.json", home=home, cwd=project).code == 1
    # re-signed by a key that registered nothing: signature fine, not the on-chain owner
    resigned = attest.sign(Account.create(), stmt)
    (project / "f.json").write_text(json.dumps(resigned))
    bad = cli("verify", "--statement", "f.json", home=home, cwd=project)
    assert bad.code == 1 and "not on chain as an artefact of the signer" in bad.err
    (project / "f.json").write_text('{"payload": 1}')
    assert cli("verify", "--statement", "f.json", home=home, cwd=project).code == 2


def test_verify_counts_files_hashed_and_draws_only_on_a_terminal(project, cli, monkeypatch):
    import sys

    from mltrail.provenance.digest import digest_tree

    seen: list[int] = []
    digest_tree(project / "raw", seen.append)
    assert seen == [1, 1, 1]  # one per file hashed
    home = project / ".mltrail"
    cli("register", "raw", "-k", "dataset", home=home, cwd=project)
    monkeypatch.delenv("CI", raising=False)
    piped = cli("verify", "raw", home=home, cwd=project)
    assert piped.code == 0 and piped.err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    quiet = cli("verify", "--all", "--json", home=home, cwd=project)
    assert quiet.code == 0 and quiet.err == "" and quiet.json()["ok"]
    tty = cli("verify", "raw", home=home, cwd=project)
    assert tty.code == 0 and "matches dataset" in tty.out, tty.err
