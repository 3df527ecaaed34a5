"""Adversaries against the warm agent (redteam, 2026-11-25): malformed requests from a
same-uid process leave the agent serving and are declined before anything runs; the
differences from a command run in place that the red team found (descriptors beyond 0-2,
resource limits) stay fixed."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from agentkit import EXE, home_and_agent, served
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrail.agent import process_context

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
    with home_and_agent(tmp_path_factory.mktemp("adv")) as setup:
        yield setup


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
                reply = s.recv(4096)
                assert reply == b"" or b'"decline"' in reply  # unanswered, or declined
        assert _status_pid(sock) == info["pid"]


def test_bad_run_requests_are_declined_before_anything_runs(agent):
    """A request of the wrong shape, or from another process context, or with limits the
    agent cannot apply, is declined before any command process exists: the real client
    then runs the command in place."""
    root, env, info = agent
    sock = info["socket"]
    base = _base_request(root, env)
    before = served(env)
    bads = ({"context": "another"}, {"umask": "abc"}, {"env": {"A=B": "1"}}, {"env": ["A"]},
            {"streams": []},
            {"streams": [["no-such-codec", "strict"]] * 3}, {"fds": [0, 1]}, {"context": 7},
            {"argv": "list"}, {"signals": {}}, {"limits": {"RLIMIT_NOFILE": [1, 2**62]}}, None)
    for bad in bads:
        data, _ = _send_run(sock, dict(base, **(bad or {})))
        assert (b'"decline"' in data and b'"pid"' not in data) == (bad is not None), (bad, data)
    assert served(env) == before + 1  # only the well-formed request from this context
    assert _status_pid(sock) == info["pid"]


def _base_request(root: Path, env: dict[str, str]) -> dict[str, object]:
    return {"op": "run", "argv": ["mltrail", "list", "--json"], "env": env, "cwd": str(root),
            "umask": 0o22, "streams": [["utf-8", "strict"]] * 3, "fds": [0, 1, 2],
            "limits": {}, "nice": 0, "context": process_context(),
            "signals": {"ignored": [], "blocked": []}}


def _send_run(sock: str, request: object) -> tuple[bytes, bytes]:
    """Send ``request`` with a pipe as the three streams; the agent's answer and what the
    command (if any) wrote."""
    r, w = os.pipe()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(60)
        s.connect(sock)
        socket.send_fds(s, [_frame(request)], [w, w, w])
        os.close(w)
        data = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(4096):
                data += chunk
    with os.fdopen(r, "rb") as fh:
        return data, fh.read()


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70)
                     | st.text(max_size=12), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
FUZZ_EXAMPLES = int(os.environ.get("MLTRAIL_AGENT_FUZZ", "30"))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_random_request_fields_never_break_the_agent(agent, data):
    """A same-uid adversary sends run requests with random fields replaced (any JSON) or
    dropped. Every one is declined or runs as a command that ends with 0, 1 or 2 and no
    traceback; the agent keeps serving. ``MLTRAIL_AGENT_FUZZ=N`` runs N seeds."""
    root, env, info = agent
    request = _base_request(root, env)
    for key in data.draw(st.lists(st.sampled_from(sorted(request)), min_size=1, max_size=3,
                                  unique=True)):
        if data.draw(st.booleans()):
            del request[key]
        else:
            request[key] = data.draw(_JSON)
    answer, output = _send_run(info["socket"], request)
    if b'"pid"' in answer:
        assert answer.endswith((b'{"exit": 0}', b'{"exit": 1}', b'{"exit": 2}')), (request,
                                                                                   answer)
        assert b"Traceback" not in output, output[-2000:]
    else:
        assert answer == b"" or b'"decline"' in answer, (request, answer)
    assert _status_pid(info["socket"]) == info["pid"]


def _both(script: str, root: Path, env: dict[str, str]
          ) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """``bash -c script`` in place, then through the agent (which must have run it)."""
    here = subprocess.run(["bash", "-c", script], env=dict(env, MLTRAIL_AGENT="off"), cwd=root,
                          capture_output=True, text=True, timeout=120)
    before = served(env)
    via = subprocess.run(["bash", "-c", script], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120)
    assert served(env) == before + 1
    return here, via


def test_dev_fd_paths_name_the_callers_file(agent):
    root, env, _ = agent
    here, via = _both(f"exec 7<data.csv; exec {EXE} verify /dev/fd/7", root, env)
    assert via.stderr == here.stderr and via.returncode == here.returncode


def test_callers_file_size_limit_applies(agent):
    root, env, _ = agent
    here, via = _both(f"ulimit -f 0; {EXE} list --json > out.json; echo $?", root, env)
    Path(root, "out.json").unlink(missing_ok=True)
    assert via.stdout == here.stdout
