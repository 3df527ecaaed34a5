"""The warm agent runs commands exactly as they run in place, as the caller, and ends them
with the caller (mltrail.agent). Every command here is the installed ``mltrail`` run as a
subprocess; the agent's served count proves where it ran."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from agentkit import (
    EXE,
    agent_env,
    agent_folder,
    agent_status,
    home_and_agent,
    run,
    running_agent,
    served,
)
from agentkit import wait_for as wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit import free_port, make_home

# Reads, --json, help, version, usage errors and refusals: identical output either way.
SAME = [
    ["show", "ds"], ["show", "ds", "--json"], ["history", "ds"], ["list"], ["list", "--json"],
    ["lineage", "ds"], ["roles", "list", "--json"], ["ledger", "status", "--json"],
    ["ledger", "check", "--json"], ["--help"], ["show", "--help"], ["--version"],
    ["show"], ["list", "--limit", "x"], ["--bogus"], ["show", "nosuch"],
    ["--as", "dev", "transition", "ds", "validated"], ["register", "missing.csv", "-k", "dataset"],
    ["register", "data.csv", "-k", "ship"], ["--as", "nobody", "register", "data.csv",
                                                 "-k", "dataset"],
    ["audit", "--help"], ["roles", "grant", "dev", "nosuch"],
]
WORDS = ["show", "history", "list", "lineage", "roles", "ledger", "status", "check", "ds",
         "nosuch", "--json", "-k", "dataset", "--limit", "2", "x", "--as", "dev", "--debug",
         "--help", "register", "data.csv", "transition", "validated"]


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A home with a dataset and a model, a private agent folder and a running agent."""
    with home_and_agent(tmp_path_factory.mktemp("agent")) as setup:
        yield setup


def _off(env: dict[str, str]) -> dict[str, str]:
    return dict(env, MLTRAIL_AGENT="off")


@pytest.mark.parametrize("args", SAME, ids=" ".join)
def test_same_answer_in_the_agent_and_in_place(setting, args):
    root, env, _ = setting
    before = served(env)
    agent = run(args, env, cwd=root)
    assert served(env) == before + 1
    here = run(args, _off(env), cwd=root)
    assert (agent.returncode, agent.stdout, agent.stderr) == (
        here.returncode, here.stdout, here.stderr)
    assert agent.returncode in (0, 1, 2)
    assert "Traceback" not in agent.stderr


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(WORDS), min_size=1, max_size=5))
def test_random_argument_lists_answer_the_same(setting, args):
    root, env, _ = setting
    if "register" in args or "transition" in args:
        args = [*args, "--as", "nobody"]  # refused, so both runs see the same ledger
    agent = run(args, env, cwd=root)
    here = run(args, _off(env), cwd=root)
    assert (agent.returncode, agent.stdout, agent.stderr) == (
        here.returncode, here.stdout, here.stderr)
    assert agent.returncode in (0, 1, 2), agent.stderr
    assert "Traceback" not in agent.stderr


def test_writes_in_the_agent_land_and_check(setting):
    root, env, _ = setting
    before = served(env)
    for i in range(3):
        (root / f"w{i}.bin").write_bytes(os.urandom(32))
        p = run(["--as", "dev", "register", f"w{i}.bin", "-k", "model", "--parent", "ds",
                 "--name", f"w{i}", "--json"], env, cwd=root)
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout)["name"] == f"w{i}"
        t = run(["--as", "dev", "transition", f"w{i}", "trained"], env, cwd=root)
        assert t.returncode == 0, t.stderr
    assert served(env) == before + 6
    check = run(["ledger", "check", "--json"], _off(env), cwd=root)
    assert check.returncode == 0, check.stderr
    shown = json.loads(run(["show", "w2", "--json"], _off(env), cwd=root).stdout)
    assert shown["state"] == "trained"


def test_concurrent_writes_through_the_agent(setting):
    root, env, _ = setting
    procs = []
    for i in range(6):
        (root / f"c{i}.csv").write_text(f"{i}\n")
        procs.append(subprocess.Popen(
            [EXE, "--as", "steward", "register", f"c{i}.csv", "-k", "dataset", "--name", f"c{i}",
             "--json"], env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e for _, e in outs]
    ids = {json.loads(o)["artefact_id"] for o, _ in outs}
    assert len(ids) == 6
    assert run(["ledger", "check"], _off(env), cwd=root).returncode == 0


def test_the_command_is_the_caller_not_the_agent(setting, tmp_path):
    """Environment, working folder and umask are the caller's: the agent was started for
    one home; a command for another home writes there, with a relative path, honouring
    the caller's umask and MLTRAIL_SCRYPT_N."""
    root, env, _ = setting
    other = tmp_path / "proj"
    (other / "sub").mkdir(parents=True)
    env2 = dict(env, MLTRAIL_HOME=str(other / ".mltrail"), MLTRAIL_SCRYPT_N="1024")
    before = served(env)
    p = subprocess.run(["sh", "-c", f"umask 077 && {EXE} init --json"], env=env2, cwd=other,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert stat.S_IMODE((other / ".mltrail" / "config.json").stat().st_mode) == 0o600
    assert run(["id", "create", "eve"], env2, cwd=other).returncode == 0
    keystore = json.loads((other / ".mltrail" / "keys" / "eve.json").read_text())
    assert keystore["crypto"]["kdfparams"]["n"] == 1024
    (other / "sub" / "d.csv").write_text("1\n")
    r = run(["register", "d.csv", "-k", "dataset", "--name", "mine", "--json"], env2,
            cwd=other / "sub")
    assert r.returncode == 0, r.stderr
    assert served(env) == before + 3
    assert run(["show", "mine"], _off(env2), cwd=other).returncode == 0
    assert run(["show", "mine"], _off(env), cwd=root).returncode == 2  # not in the first home


def test_stdin_is_the_callers(setting, tmp_path):
    root, env, _ = setting
    before = served(env)
    p = subprocess.run([EXE, "ledger", "status", "--json"], env=env, cwd=root,
                       input="ignored\n", capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    assert served(env) == before + 1
    # a closed stdin: run in place, exactly as the caller set it up
    before = served(env)
    p = subprocess.run(["sh", "-c", f"{EXE} ledger status --json <&-"], env=env, cwd=root,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert served(env) == before


def _serve(env: dict[str, str], root: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([EXE, "serve", "--port", str(port)], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def listening() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    assert wait_until(listening, 60), proc.stderr.read() if proc.poll() is not None else ""
    return proc


def _closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return False
    except OSError:
        return True


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGKILL"])
def test_signals_and_the_callers_death_end_the_command(setting, how):
    """Ctrl-C and SIGTERM are relayed; a caller killed outright takes its command with it."""
    root, env, _ = setting
    before = served(env)
    port = free_port()
    proc = _serve(env, root, port)
    assert served(env) == before + 1  # the server runs in the agent
    proc.send_signal(getattr(signal, how))
    proc.wait(30)
    assert wait_until(lambda: _closed(port), 30)
    if how == "SIGINT":
        assert proc.returncode in (0, 130)
    elif how == "SIGTERM":
        assert proc.returncode in (0, -signal.SIGTERM, 143)


def test_agent_commands(tmp_path):
    with agent_folder() as folder:
        env = agent_env(folder)
        assert agent_status(env)["running"] is False
        p = run(["agent", "stop"], env)
        assert p.returncode == 0 and "no agent running" in p.stdout
        off = run(["agent", "start"], dict(env, MLTRAIL_AGENT="off"))
        assert off.returncode == 2 and off.stderr.count("\n") == 1
        assert "MLTRAIL_AGENT is off" in off.stderr
        bad = run(["agent", "start", "--idle", "0"], env)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        with running_agent(env, idle=60) as info:
            human = run(["agent", "status"], env)
            assert re.match(rf"agent running: pid {info['pid']}, \d+ commands served",
                            human.stdout)
            stopped = run(["agent", "stop", "--json"], env)
            assert json.loads(stopped.stdout)["stopped"] == info["pid"]
            assert not Path(info["socket"]).exists()
            assert wait_until(lambda: not _alive(info["pid"]), 10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_idle_agent_exits_and_a_command_starts_one(tmp_path):
    h = make_home(tmp_path)
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        with running_agent(env, idle=1) as info:
            assert wait_until(lambda: not agent_status(env)["running"], 30)
            assert not Path(info["socket"]).exists()
            assert wait_until(lambda: not _alive(info["pid"]), 10)
        # no agent: a write runs in place and starts one for the next command
        (tmp_path / "d.csv").write_text("1\n")
        p = run(["--as", "steward", "register", "d.csv", "-k", "dataset"], env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr
        assert wait_until(lambda: agent_status(env)["running"], 60)
        second = agent_status(env)
        try:
            assert second["pid"] != info["pid"]
            assert run(["show", "d.csv"], env, cwd=tmp_path).returncode in (0, 2)
            assert served(env) >= 1
        finally:
            run(["agent", "stop"], env)


def test_a_killed_agent_leaves_a_socket_that_is_replaced(tmp_path):
    h = make_home(tmp_path)
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        with running_agent(env) as info:
            os.kill(info["pid"], signal.SIGKILL)
            assert wait_until(lambda: not _alive(info["pid"]), 10)
            assert Path(info["socket"]).exists()  # stale
            p = run(["ledger", "status", "--json"], env)  # refused connection: in place
            assert p.returncode == 0, p.stderr
            p = run(["ledger", "check"], env)  # not a fast read: starts a new agent
            assert p.returncode == 0, p.stderr
            assert wait_until(lambda: agent_status(env)["running"], 60)
            assert agent_status(env)["pid"] != info["pid"]
            run(["agent", "stop"], env)


def test_reads_on_the_fast_path_do_not_start_an_agent(tmp_path):
    h = make_home(tmp_path)
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        assert run(["roles", "list", "--json"], env).returncode == 0
        time.sleep(1)
        assert not list(folder.glob("*.sock"))


def test_a_steps_kill_0_stays_in_its_own_command(setting):
    """Each command has its own process group: a step that signals its group (``kill 0``)
    ends its own command, as in place, not the agent or another caller's write."""
    root, env, info = setting
    dev = ["--as", "dev", "run"]
    long = subprocess.Popen([EXE, *dev, "--step", "long", "-o", "long.txt", "--", "sh", "-c",
                             "sleep 3; echo a > long.txt"], env=env, cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    k = run([*dev, "--step", "k", "-o", "k.txt", "--", "sh", "-c", "echo b > k.txt; kill 0"],
            env, cwd=root)
    assert k.returncode == -signal.SIGTERM  # ended by its own SIGTERM, like the caller
    out, err = long.communicate(timeout=120)
    assert long.returncode == 0, err
    assert agent_status(env)["pid"] == info["pid"]


def test_niceness_and_ignored_signals_are_the_callers(setting):
    """``nice`` and ``nohup``-style ignored signals reach the command's own processes the
    same way in the agent and in place."""
    root, env, _ = setting
    step = ('cut -d" " -f19 /proc/self/stat > {o}; grep -E "^Sig(Ign|Blk)" /proc/self/status'
            ' >> {o}')
    outs = []
    for name, e in (("agent", env), ("here", _off(env))):
        o = f"ctx-{name}.txt"
        script = (f"trap '' HUP; exec nice -n 7 {EXE} --as dev run --step ctx{name} -o {o} -- "
                  f"sh -c '{step.format(o=o)}'")
        p = subprocess.run(["bash", "-c", script], env=e, cwd=root, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        outs.append((root / o).read_text())
    assert outs[0] == outs[1]
    # ``nice -n 7`` adds to the niceness the suite itself runs at (0 in CI)
    assert outs[0].splitlines()[0] == str(min(os.getpriority(os.PRIO_PROCESS, 0) + 7, 19))
    ignored = int(outs[0].splitlines()[2].split()[1], 16)
    assert ignored & (1 << (signal.SIGHUP - 1))
