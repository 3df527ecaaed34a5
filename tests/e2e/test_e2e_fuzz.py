"""Random argument lists through the ``mltrail`` entry point (Hypothesis, a fixed small
budget): every run exits 0, 1 or 2, never prints a traceback, and a failed run leaves the
home as it was (no new block, object, key or setting). Mostly in-process for speed, plus a
few runs of the installed command as a real process."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

COMMANDS = [[], ["show"], ["history"], ["lineage"], ["list"], ["register"], ["transition"],
            ["roles", "list"], ["roles", "grant"], ["roles", "revoke"], ["ledger", "status"],
            ["id", "list"], ["id", "create"], ["init"], ["frobnicate"], ["--version"]]
WORDS = ["--json", "--kind", "-k", "--limit", "--parent", "-p", "--name", "--evidence", "--as",
         "--help", "dataset", "model", "service", "trained", "validated", "deployed", "alice",
         "admin", "nobody", "data_steward", "emperor", "ds", "data", "model.bin", "fifo",
         "/dev/null", "/dev/zero", "missing.txt", "dangling", "sub", "0x" + "ab" * 32, "0xzz",
         "0xabcdef", "-1", "0", "1", "99999999999999999999999", "[bold]", "[/]", "", "é", "--",
         "-"]

argv = st.tuples(
    st.sampled_from([[], ["--as", "alice"], ["--as", "nobody"], ["--as", "../x"]]),
    st.sampled_from(COMMANDS),
    st.lists(st.one_of(st.sampled_from(WORDS),
                       st.text(st.characters(blacklist_characters="\x00"), max_size=8)),
             max_size=6),
).map(lambda t: [*t[0], *t[1], *t[2]])


def snapshot(home: Path) -> tuple[object, ...]:
    """What a refused command must not change: chain head, objects, keys, settings."""
    files = sorted(str(p.relative_to(home)) for d in ("objects", "keys")
                   for p in (home / d).rglob("*"))
    conn = sqlite3.connect(home / "chain.sqlite")
    head = conn.execute("SELECT v FROM kv WHERE k=?", (b"v1:canonical_head_hash",)).fetchone()
    conn.close()
    fixed = [hashlib.sha256((home / f).read_bytes()).hexdigest()
             for f in ("config.json", "lifecycle.yaml")]
    return head, files, fixed


@pytest.fixture
def fuzz_home(tmp_path, cli):
    assert cli("init", cwd=tmp_path).code == 0
    assert cli("id", "create", "alice", cwd=tmp_path).code == 0
    for role in ("data_steward", "model_developer"):
        assert cli("roles", "grant", "alice", role, cwd=tmp_path).code == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.csv").write_text("x\n1\n")
    (tmp_path / "model.bin").write_bytes(b"w")
    (tmp_path / "sub").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert cli("--as", "alice", "register", "data", "-k", "dataset", "--name", "ds",
               cwd=tmp_path).code == 0
    return tmp_path


def check(code: int, err: str, before: tuple[object, ...], home: Path, args: list[str]) -> None:
    event(f"exit {code}")
    assert code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in err and "internal error" not in err, (args, err)
    if code != 0:
        assert snapshot(home) == before, (args, err)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv)
def test_random_arguments_in_process(fuzz_home, cli, args):
    home = fuzz_home / ".mltrail"
    before = snapshot(home)
    r = cli(*args, cwd=fuzz_home)
    check(r.code, r.err, before, home, args)


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(args=argv)
def test_random_arguments_installed_command(fuzz_home, args):
    home = fuzz_home / ".mltrail"
    before = snapshot(home)
    env = dict(os.environ, MLTRAIL_HOME=str(home))
    p = subprocess.run([str(Path(sys.executable).with_name("mltrail")), *args], cwd=fuzz_home,
                       env=env, capture_output=True, text=True, timeout=120)
    check(p.returncode, p.stderr, before, home, args)
