"""The agent as an adversary sees it: another local user who plants a folder, a symlink or an
impostor socket, or connects to a real agent; stale code; the agent's own environment
leaking into commands; a password prompt sent where no terminal is."""

from __future__ import annotations

import json
import os
import pty
import shutil
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from agentkit import EXE, agent_env, agent_folder, agent_status, run, running_agent, served

from mltrail import agent
from testkit import make_home

NOBODY = 65534
INTERPRETER = Path(EXE).read_text().splitlines()[0].removeprefix("#!")  # as the command runs
needs_root = pytest.mark.skipif(os.getuid() != 0, reason="needs root to act as another user")


def test_every_folder_mode_open_to_others_is_refused(tmp_path, monkeypatch):
    """All 4,096 modes (special bits too): the 64 without group or other bits are usable,
    the 4,032 others refused."""
    d = tmp_path / "agents"
    d.mkdir()
    monkeypatch.setenv(agent.ENV_DIR, str(d))
    accepted = set()
    for mode in range(0o10000):
        os.chmod(d, mode)
        try:
            agent.agent_dir()
            accepted.add(mode)
        except agent.AgentUnavailable:
            pass
    os.chmod(d, 0o700)
    assert accepted == {m for m in range(0o10000) if not m & 0o077}
    assert len(accepted) == 64


def test_a_symlink_or_a_file_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv(agent.ENV_DIR, str(link))
    with pytest.raises(agent.AgentUnavailable, match="not a folder"):
        agent.agent_dir()
    f = tmp_path / "file"
    f.write_text("")
    monkeypatch.setenv(agent.ENV_DIR, str(f))
    with pytest.raises(agent.AgentUnavailable, match="not a folder"):
        agent.agent_dir(create=True)


class Impostor:
    """A socket planted where the agent's would be; records every connection's bytes."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o777)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.received: list[bytes] = []
        self.stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                self.received.append(conn.recv(1 << 16))
            except OSError:
                self.received.append(b"")
            conn.close()

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.sock.close()


@needs_root
@pytest.mark.parametrize("plant", ["other owner", "open to all", "symlink to theirs"])
def test_a_planted_folder_never_gets_a_command_or_a_password(tmp_path, plant):
    """Another user got to the agents' folder first and serves a socket at the exact path
    the caller would use: every command runs in place and the impostor hears nothing."""
    h = make_home(tmp_path)
    (tmp_path / "d.csv").write_text("1\n")
    with agent_folder() as base:
        theirs = base / "theirs"
        theirs.mkdir()
        if plant == "other owner":
            os.chmod(theirs, 0o700)
            os.chown(theirs, NOBODY, NOBODY)
            folder = theirs
        elif plant == "open to all":
            os.chmod(theirs, 0o777)
            folder = theirs
        else:
            os.chmod(theirs, 0o700)
            os.chown(theirs, NOBODY, NOBODY)
            folder = base / "mine"
            folder.symlink_to(theirs)
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        path = subprocess.run([INTERPRETER, "-c", "from pathlib import Path; from mltrail "
                               f"import agent; print(agent.socket_path({str(folder)!r}))"],
                              env=env, capture_output=True, text=True, check=True).stdout.strip()
        impostor = Impostor(Path(path))
        try:
            for args in (["--as", "steward", "register", "d.csv", "-k", "dataset"],
                         ["ledger", "check"], ["agent", "status"]):
                p = run(args, env, cwd=tmp_path)
                assert p.returncode == 0, p.stderr
            started = run(["agent", "start"], env)
            assert started.returncode == 2 and "cannot start the agent" in started.stderr
        finally:
            impostor.close()
        assert impostor.received == []
        assert [p.name for p in theirs.iterdir()] == [Path(path).name]  # nothing of ours


def _as_nobody_send(path: str, request: dict[str, object]) -> str:
    """Connect as uid 65534 and send a request; what came back ('EOF': closed unanswered,
    before or after the request was read)."""
    code = (
        "import os, socket, sys, json\n"
        "from mltrail.agent import send_message, recv_message\n"  # before: nobody can't read it
        f"os.setgid({NOBODY}); os.setuid({NOBODY})\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        f"s.connect({path!r})\n"
        "try:\n"
        f"    send_message(s, json.loads({json.dumps(request)!r}), [0, 1, 2])\n"
        "    print(recv_message(s)[0])\n"
        "except (EOFError, ConnectionResetError, BrokenPipeError):\n    print('EOF')\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    return (p.stdout + p.stderr).strip()


@needs_root
def test_another_user_who_reaches_the_socket_is_refused(tmp_path):
    """Even with the folder and socket opened up by mistake, the peer's uid is checked."""
    h = make_home(tmp_path)
    (tmp_path / "d.csv").write_text("1\n")
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        with running_agent(env) as info:
            os.chmod(folder, 0o777)
            os.chmod(info["socket"], 0o777)
            request = {"op": "run", "argv": ["mltrail", "--as", "steward", "register", "d.csv",
                                             "-k", "dataset"], "env": env, "cwd": str(tmp_path),
                       "umask": 0o22, "streams": [["utf-8", "strict"]] * 3}
            answer = _as_nobody_send(info["socket"], request)
            assert answer == "EOF", answer
            assert _as_nobody_send(info["socket"], {"op": "stop"}) == "EOF"
            os.chmod(folder, 0o700)
            assert agent_status(env)["running"] is True
            assert served(env) == 0
            listed = run(["list", "--json"], dict(env, MLTRAIL_AGENT="off"))
            assert json.loads(listed.stdout) == []


def test_edited_code_is_never_served_by_an_old_agent(tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(Path(agent.__file__).parents[1], package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    first = agent.fingerprint(str(package))
    assert agent.fingerprint(str(package)) == first
    target = package / "ledger" / "embedded.py"
    target.write_text(target.read_text() + "\n# edited\n")
    second = agent.fingerprint(str(package))
    assert second != first
    st = target.stat()  # the same size, another mtime
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert agent.fingerprint(str(package)) not in (first, second)
    (package / "new_module.py").write_text("")
    assert len({first, second, agent.fingerprint(str(package))}) == 3


def test_commands_see_the_callers_environment_only(tmp_path):
    """The agent was started with a variable the caller does not have, and the caller has
    one the agent was not started with: a captured step's process sees the caller's."""
    h = make_home(tmp_path)
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        with running_agent(dict(env, AGENT_ONLY="leak")) as info:
            # the agent keeps none of its starter's environment but the interpreter's
            # and file locations': not the password, not the starter's other variables
            environ = Path(f"/proc/{info['pid']}/environ").read_bytes().split(b"\0")
            names = {e.split(b"=", 1)[0] for e in environ if e}
            assert not names & {b"MLTRAIL_PASSWORD", b"AGENT_ONLY", b"MLTRAIL_HOME"}
            caller = dict(env, CALLER_ONLY="mine")
            p = run(["--as", "dev", "run", "--step", "env", "-o", "out.txt", "--",
                     "sh", "-c", 'echo "[$AGENT_ONLY][$CALLER_ONLY]" > out.txt'], caller,
                    cwd=tmp_path)
            assert p.returncode == 0, p.stderr
            assert served(env) == 1
        assert (tmp_path / "out.txt").read_text() == "[][mine]\n"


@pytest.mark.parametrize("password", [None, "set"])
def test_a_possible_password_prompt_stays_in_place(password):
    """A forked command has no controlling terminal, so getpass would read the password
    with echo on: with stdin a terminal and no MLTRAIL_PASSWORD, nothing is forwarded."""
    leader, follower = pty.openpty()
    env = dict(os.environ, MLTRAIL_AGENT="auto")
    env.pop("MLTRAIL_PASSWORD", None)
    if password:
        env["MLTRAIL_PASSWORD"] = password
    try:
        p = subprocess.run([sys.executable, "-c", "from mltrail.agent.client import usable;"
                            "import sys; sys.stderr.write(str(usable(['register'])))"],
                           stdin=follower, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           env=env, text=True, timeout=60)
    finally:
        os.close(leader)
        os.close(follower)
    assert p.stderr == str(bool(password))


def test_socket_and_folder_modes(tmp_path):
    with agent_folder() as folder:
        env = agent_env(folder)
        with running_agent(env) as info:
            assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
            assert stat.S_IMODE(os.stat(info["socket"]).st_mode) == 0o600


def test_a_folder_too_deep_for_a_socket_is_refused(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True, mode=0o700)
    h = make_home(tmp_path)
    env = dict(agent_env(deep), MLTRAIL_HOME=str(h.root))
    p = run(["agent", "start"], env)
    assert p.returncode == 2 and "too long for a Unix socket" in p.stderr
    assert run(["ledger", "check"], env).returncode == 0  # runs in place
    assert "too long" in run(["agent", "status"], env).stdout


def test_a_relative_agent_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(agent.ENV_DIR, "agents")
    with pytest.raises(agent.AgentUnavailable, match="not an absolute path"):
        agent.agent_dir(create=True)
