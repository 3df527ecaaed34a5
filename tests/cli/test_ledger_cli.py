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


# -- issue 9: every input gets exit 0, 1 or 2 and one line ------------------------------------

@pytest.mark.parametrize("args,needle", [
    ([], "Usage"),  # bare command: help, exit 2 as click does
    (["show"], "Missing argument"),
    (["bogus"], "No such command"),
    (["list", "--bogus"], "No such option"),
    (["list", "--limit", "x"], "Invalid value for '--limit'"),
    (["list", "--limit", "99999999999999999999999"], "Invalid value for '--limit'"),
    (["list", "--limit", "0"], "Invalid value for '--limit'"),
    (["show", "a", "b"], "unexpected extra argument"),
    (["roles"], "Usage"),
    (["--home"], "requires an argument"),
])
def test_usage_errors_exit_2(tmp_path, cli, args, needle):
    r = cli(*args, cwd=tmp_path)
    assert r.code == 2, (r.out, r.err)
    assert needle in r.err + r.out and "Traceback" not in r.err and "internal" not in r.err
    if needle != "Usage":
        assert len(r.err.strip().splitlines()) == 1


def test_version(cli, tmp_path):
    from importlib.metadata import version

    r = cli("--version", cwd=tmp_path)
    assert r.code == 0 and r.out.strip() == f"mltrail {version('mltrail')}"


def _damage(home: Path, what: str) -> None:
    import shutil

    target = {"config-dir": "config.json", "config-garbage": "config.json",
              "index-dir": "index.sqlite", "index-garbage": "index.sqlite",
              "chain-dir": "chain.sqlite", "chain-garbage": "chain.sqlite",
              "chain-empty": "chain.sqlite", "chain-missing": "chain.sqlite",
              "keystore-empty": "keys/admin.json", "lifecycle-dir": "lifecycle.yaml",
              "keys-file": "keys", "objects-file": "objects"}[what]
    p = home / target
    for extra in (p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
        extra.unlink(missing_ok=True)
    if p.is_dir():
        shutil.rmtree(p)
    else:
        p.unlink(missing_ok=True)
    if what.endswith("-dir"):
        p.mkdir()
    elif what.endswith("-garbage") or what == "keys-file" or what == "objects-file":
        p.write_text("garbage\n")
    elif what == "chain-empty":
        p.write_bytes(b"")
    elif what == "keystore-empty":
        p.write_text("{}")


@pytest.mark.parametrize("what", ["config-dir", "config-garbage", "index-dir", "index-garbage",
                                  "chain-dir", "chain-garbage", "chain-empty", "chain-missing",
                                  "keystore-empty", "lifecycle-dir", "keys-file", "objects-file"])
def test_damaged_home_is_one_line(project, cli, what):
    _damage(project / ".mltrail", what)
    for args in (["list"], ["roles", "list"], ["--as", "alice", "register", "model.bin",
                                                "-k", "model"], ["id", "list"]):
        r = cli(*args, cwd=project)
        assert r.code in (0, 1, 2), (args, r.err)
        assert "Traceback" not in r.err and "internal error" not in r.err, (args, r.err)
        if r.code:
            assert len(r.err.strip().splitlines()) <= 2, r.err
    r = cli("list", cwd=project)
    if what.startswith("chain"):
        assert r.code == 1 and "ledger damaged" in r.err and "chain.sqlite" in r.err
    elif what not in ("keystore-empty", "keys-file", "objects-file"):
        assert r.code == 2 and "damaged" in r.err


def test_bad_registry_address_and_home_under_a_file(project, cli, tmp_path):
    cfg = project / ".mltrail" / "config.json"
    cfg.write_text(cfg.read_text().replace('"registry": "0x', '"registry": "0xzz'))
    r = cli("list", cwd=project)
    assert r.code == 2 and "not an address" in r.err
    r = cli("--home", str(project / "model.bin" / "h"), "init", cwd=tmp_path)
    assert r.code == 2 and "is not a folder" in r.err


@pytest.mark.parametrize("special", ["fifo", "device", "dangling", "dangling-in-dir", "dir"])
def test_special_files_are_refused_before_reading(project, cli, special):
    target = project / "special"
    if special == "fifo":
        os.mkfifo(target)
    elif special == "device":
        target = Path("/dev/zero")
    elif special == "dangling":
        target.symlink_to(project / "nowhere")
    elif special == "dangling-in-dir":
        target.mkdir()
        (target / "f").write_text("x")
        (target / "link").symlink_to(project / "nowhere")
    else:
        target.mkdir()
    head = _head(cli, project)
    r = cli("--as", "alice", "register", str(target), "-k", "dataset", cwd=project)
    if special == "dir":  # an empty folder is a fine dataset
        assert r.code == 0, r.err
        return
    assert r.code == 2 and "Traceback" not in r.err, r.err
    assert any(w in r.err for w in ("FIFO", "device", "dangling")), r.err
    ev = cli("transition", "0x" + "ab" * 32, "trained", "--evidence", str(target), cwd=project)
    assert ev.code == 2 and "evidence" in ev.err
    assert _head(cli, project) == head


def _objects(project: Path) -> set[str]:
    return {str(p) for p in (project / ".mltrail" / "objects").rglob("*") if p.is_file()}


def test_refused_writes_leave_no_objects(project, cli):
    before = _objects(project)
    r = cli("register", "model.bin", "-k", "model", "--name", "x", cwd=project,
            env={"MLTRAIL_PASSWORD": "wrong"})
    assert r.code == 2 and "wrong password" in r.err
    r = cli("--as", "steward", "register", "model.bin", "-k", "model", cwd=project)
    assert r.code == 2  # no such identity
    m = cli("--as", "alice", "register", "model.bin", "-k", "model", "--json",
            cwd=project).json()["artefact_id"]
    after_register = _objects(project)
    assert len(after_register) == len(before) + 1  # the metadata document
    (project / "evidence.txt").write_text("not allowed")
    r = cli("--as", "alice", "transition", m, "deployed", "--evidence", "evidence.txt",
            cwd=project)
    assert r.code == 2 and "not allowed" in r.err
    assert _objects(project) == after_register
    r = cli("--as", "alice", "transition", m, "trained", "--evidence", "evidence.txt",
            cwd=project)
    assert r.code == 0 and len(_objects(project)) == len(after_register) + 1


def test_names_and_iso_times(project, cli):
    import re

    ds = cli("--as", "alice", "register", "data", "-k", "dataset", "--name", "digits", "--json",
             cwd=project).json()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", ds["timestamp"])
    m = cli("--as", "alice", "register", "model.bin", "-k", "model", "--parent", "digits",
            "--name", "[red]cnn", "--json", cwd=project).json()
    assert cli("--as", "alice", "transition", "[red]cnn", "trained", cwd=project).code == 0
    shown = cli("show", "[red]cnn", "--json", cwd=project).json()
    assert shown["id"] == m["artefact_id"] and shown["name"] == "[red]cnn"
    assert shown["parents"] == [ds["artefact_id"]] and shown["state"] == "trained"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", shown["timestamp"])
    human = cli("show", "[red]cnn", cwd=project)
    assert "[red]cnn" in human.out  # escaped, not eaten as markup
    listed = cli("list", cwd=project)
    assert "digits" in listed.out and "[red]cnn" in listed.out
    hist = cli("history", "digits", "--json", cwd=project).json()
    assert hist["name"] == "digits" and hist["events"][0]["timestamp"].endswith("Z")
    lin = cli("lineage", "digits", "--json", cwd=project).json()
    assert [a["name"] for a in lin["descendants"]] == ["[red]cnn"]
    assert "[red]cnn" in cli("lineage", "digits", cwd=project).out
    unnamed = cli("--as", "alice", "register", "data/a.csv", "-k", "dataset", "--json",
                  cwd=project).json()
    assert unnamed["name"] == "a.csv"  # the file's name by default


def test_reads_skip_the_evm_when_the_index_is_current(project, cli):
    """show/history/lineage/list/roles list/ledger status import neither py-evm, web3 nor
    eth-account once the index is at the head; a lagging index is synced first."""
    cli("--as", "alice", "register", "data", "-k", "dataset", "--name", "ds", cwd=project)
    env = dict(os.environ, MLTRAIL_HOME=str(project / ".mltrail"))
    probe = ("import sys\nfrom mltrail.cli.main import run\nsys.argv = ['mltrail', *sys.argv[1:]]"
             "\ntry:\n    run()\nexcept SystemExit as e:\n    code = e.code\n"
             "heavy = sorted(m for m in ('eth', 'web3', 'eth_account', 'eth_keyfile', 'py_ecc')"
             " if m in sys.modules)\nprint('HEAVY', heavy, file=sys.stderr)\n")
    for args in (["show", "ds"], ["history", "ds"], ["lineage", "ds"], ["list"],
                 ["roles", "list"], ["ledger", "status"]):
        p = subprocess.run([sys.executable, "-c", probe, *args], env=env, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0 and "HEAVY []" in p.stderr, (args, p.stderr)
    for p in (project / ".mltrail").glob("index.sqlite*"):  # no index: it lags the chain
        p.unlink()
    p = subprocess.run([sys.executable, "-c", probe, "show", "ds"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert "HEAVY ['eth'" in p.stderr  # the full client synced it ...
    assert cli("show", "ds", cwd=project).code == 0  # ... and the artefact is back


def test_atomic_write_honours_umask(tmp_path):
    from mltrail._fs import atomic_write

    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "report.json", b"{}")
        atomic_write(tmp_path / "secret", b"k", mode=0o600)
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_reader_head_from_chain_meta_or_pyevm_keys(project):
    """The index is current only when its last block is the chain's head, by number and
    (when the index remembers it) by hash; the head comes from chain.sqlite's meta table,
    or py-evm's canonical-head key for a chain written before that table."""
    import sqlite3

    from mltrail.config import Home
    from mltrail.ledger.reader import Head, IndexReader, embedded_head

    home = Home(project / ".mltrail")
    pyevm = embedded_head(home.chain_db)
    assert pyevm is not None and pyevm.hash and pyevm.hash.startswith("0x")
    reader = IndexReader.open(home)
    assert reader is not None
    last = reader.head
    reader.close()
    chain = sqlite3.connect(home.chain_db)
    chain.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    chain.execute("INSERT OR REPLACE INTO meta VALUES ('head', ?), ('head_hash', ?)",
                  (str(last), pyevm.hash))
    chain.commit()
    assert embedded_head(home.chain_db) == Head(last, pyevm.hash)
    assert IndexReader.open(home) is not None
    chain.execute("UPDATE meta SET value=? WHERE key='head'", (str(last + 1),))
    chain.commit()
    assert IndexReader.open(home) is None  # the chain moved on: fall back and sync
    chain.execute("UPDATE meta SET value=? WHERE key='head'", (str(last),))
    chain.commit()
    index = sqlite3.connect(home.index_db)
    index.execute("INSERT OR REPLACE INTO meta VALUES ('last_hash', ?)", ("0x" + "00" * 32,))
    index.commit()
    assert IndexReader.open(home) is None  # same height, another block: not current
    index.close()
    chain.close()


def test_status_is_lines_for_people_and_json_on_request(project, cli):
    head = _head(cli, project)
    human = cli("ledger", "status", cwd=project)
    assert human.code == 0 and not human.out.lstrip().startswith("{")
    lines = {ln.split()[0]: ln.split()[1:] for ln in human.out.splitlines() if ln.strip()}
    assert lines["head"] == [str(head)] and lines["identity"] == ["admin"]
    assert "rpc_url" not in lines  # empty fields are left to --json


def test_roles_list_and_history_name_local_identities(project, cli):
    """Accounts with a local identity read ``name (0x12345678…)``, one renderer for both."""
    rows = cli("roles", "list", "--json", cwd=project).json()
    alice = next(r for r in rows if r["name"] == "alice")["address"]
    wide = {"COLUMNS": "300"}  # a table cell may wrap on a narrow terminal
    out = cli("roles", "list", cwd=project, env=wide).out
    assert f"alice ({alice[:10]}…)" in out and alice not in out
    cli("--as", "alice", "register", "data", "-k", "dataset", "--name", "d", cwd=project)
    hist = cli("history", "d", cwd=project, env=wide).out  # the cell may still wrap
    assert "alice" in hist and f"({alice[:10]}…)" in hist and alice not in hist


def test_check_progress_only_on_a_terminal(project, cli, monkeypatch):
    """`ledger check` draws its bar on a terminal only: nothing on stderr under --json or
    in a pipe; on a terminal the bar runs and goes (it once crashed Rich's Live)."""
    monkeypatch.delenv("CI", raising=False)
    piped = cli("ledger", "check", cwd=project)
    assert piped.code == 0 and piped.err == "" and "ledger ok" in piped.out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    quiet = cli("ledger", "check", "--json", cwd=project)
    assert quiet.code == 0 and quiet.err == "" and quiet.json()["blocks"] > 0
    tty = cli("ledger", "check", cwd=project)
    assert tty.code == 0 and "ledger ok" in tty.out, tty.err
