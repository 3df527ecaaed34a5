"""Adversaries against the warm agent (redteam, 2026-11-25): malformed requests from a
same-uid process must leave the agent serving, and known behavioural differences from a
command run in place are pinned as strict xfails (see /work/notes/redteam.md)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from agentkit import EXE, agent_env, agent_folder, running_agent

from testkit import make_home

_MALFORMED = [
    b"\x00\x00\x00\x05{{{{{", struct.pack("!I", 0xFFFFFFFF) + b"x", b"\xff" * 64,
    struct.pack("!I", 4) + b"\xff\xfe\xfd\xfc", struct.pack("!I", 7) + b"[1,2,3]",
    struct.pack("!I", 9) + b'{"op": 7}', struct.pack("!I", 13) + b'{"op": "run"}',
]


def _frame(obj: object) -> bytes:
    b = json.dumps(obj).encode()
    return struct.pack("!I", len(b)) + b


def _status_pid(sock: str) -> int | None:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        try:
            s.connect(sock)
            s.sendall(_frame({"op": "status"}))
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return None
    return int(json.loads(data[4:])["pid"])


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    root = tmp_path_factory.mktemp("adv")
    h = make_home(root)
    (root / "data.csv").write_text("x,y\n1,2\n")
    with agent_folder() as folder:
        env = agent_env(folder, MLTRAIL_HOME=str(h.root))
        with running_agent(env) as info:
            yield root, env, info


def test_malformed_requests_leave_the_agent_serving(agent):
    _, _, info = agent
    sock = info["socket"]
    for payload in _MALFORMED:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(15)
            s.connect(sock)
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(100) == b""  # closed unanswered
        assert _status_pid(sock) == info["pid"]


def test_bad_run_requests_fail_without_running_anything(agent):
    root, env, info = agent
    sock = info["socket"]
    base = {"op": "run", "argv": ["mltrail", "list"], "env": env, "cwd": str(root),
            "umask": 0o22, "streams": [["utf-8", "strict"]] * 3}
    for bad in ({"cwd": "/nonexistent/x"}, {"umask": "abc"}, {"env": {"A=B": "1"}},
                {"streams": []}):
        r, w = os.pipe()
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(sock)
            socket.send_fds(s, [_frame(dict(base, **bad))], [w, w, w])
            os.close(w)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
        err = os.read(r, 65536)
        os.close(r)
        assert data.endswith(b'{"exit": 2}'), (bad, data)
        assert b"cannot run this command as you" in err
    assert _status_pid(sock) == info["pid"]


@pytest.mark.xfail(strict=True, reason="/dev/fd/N (N>2) names the command's own fd in the "
                   "agent, so a different content is hashed (client.forward passes fds 0-2 only)")
def test_dev_fd_paths_name_the_callers_file(agent):
    root, env, _ = agent
    script = f"exec 7<data.csv; exec {EXE} verify /dev/fd/7"
    here = subprocess.run(["bash", "-c", script], env=dict(env, MLTRAIL_AGENT="off"), cwd=root,
                          capture_output=True, text=True, timeout=120)
    via = subprocess.run(["bash", "-c", script], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert via.stderr == here.stderr


@pytest.mark.xfail(strict=True, reason="the command keeps the agent's rlimits, not the "
                   "caller's (server._become does not apply them)")
def test_callers_file_size_limit_applies(agent):
    root, env, _ = agent
    script = f"ulimit -f 0; {EXE} list --json > out.json; echo $?"
    here = subprocess.run(["bash", "-c", script], env=dict(env, MLTRAIL_AGENT="off"), cwd=root,
                          capture_output=True, text=True, timeout=120)
    via = subprocess.run(["bash", "-c", script], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120)
    Path(root, "out.json").unlink(missing_ok=True)
    assert via.stdout == here.stdout
