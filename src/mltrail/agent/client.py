"""The caller's side: hand a command to the agent, relay signals, report how it ended.

:func:`forward` answers None whenever the command should run in place instead: the
agent is off or absent, a password prompt may be needed, or a standard stream or the
working folder is unusable. Once a command was handed over it is never run a second
time here, whatever happens to the agent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from mltrail.agent import (
    ENV_MODE,
    ENV_PATH,
    IDLE_S,
    KEPT,
    AgentUnavailable,
    agent_dir,
    mode,
    recv_message,
    send_message,
    socket_path,
)

_RELAYED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
_LOST = ("error: the mltrail agent ended before the command did; its outcome is unknown "
         "(check with 'mltrail ledger status', or set MLTRAIL_AGENT=off)\n")


def usable(argv: list[str]) -> bool:
    """Whether this command may go to an agent at all (without looking for one)."""
    if mode() == "off" or "agent" in argv:
        return False
    if not os.environ.get("MLTRAIL_PASSWORD"):
        with contextlib.suppress(OSError, ValueError):
            if os.isatty(0):
                return False  # a password prompt needs the controlling terminal
    return True


def _connect() -> socket.socket | None:
    try:
        path = socket_path(agent_dir())
    except AgentUnavailable:
        return None
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(str(path))
    except OSError:
        s.close()
        return None
    return s


def _streams() -> list[list[str]] | None:
    out = []
    for fd, stream in ((0, sys.stdin), (1, sys.stdout), (2, sys.stderr)):
        try:
            os.fstat(fd)
        except OSError:
            return None  # a closed standard stream: run in place, as the caller set it up
        out.append([getattr(stream, "encoding", None) or "utf-8",
                    getattr(stream, "errors", None) or "strict"])
    return out


class Outcome(NamedTuple):
    """What :func:`forward` did: the command's exit status if the agent ran it (else None,
    and the command runs here), and whether an agent should be started for later ones."""

    code: int | None
    start_agent: bool = False


def forward(argv: list[str]) -> Outcome:
    """Run ``mltrail ARGV`` in the agent if one serves this installation."""
    if not usable(argv):
        return Outcome(None)
    streams = _streams()
    try:
        cwd = os.getcwd()
    except OSError:
        return Outcome(None)
    if streams is None:
        return Outcome(None)
    conn = _connect()
    if conn is None:
        return Outcome(None, start_agent=True)
    umask = os.umask(0)
    os.umask(umask)
    request = {"op": "run", "argv": ["mltrail", *argv], "env": dict(os.environ), "cwd": cwd,
               "umask": umask, "streams": streams}
    with conn:
        try:
            send_message(conn, request, [0, 1, 2])
        except OSError:  # nothing was handed over: the agent went away as we connected
            return Outcome(None, start_agent=True)
        return Outcome(_follow(conn))


def _follow(conn: socket.socket) -> int:
    """Relay signals to the command until the agent says how it ended."""
    try:
        first, _ = recv_message(conn)
        pid = int(first["pid"])
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        sys.stderr.write(_LOST)
        return 3

    def relay(signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)

    previous = {sig: signal.signal(sig, relay) for sig in _RELAYED}
    try:
        while True:
            try:
                end, _ = recv_message(conn)
                break
            except InterruptedError:
                continue
            except (OSError, EOFError, ValueError):
                sys.stderr.write(_LOST)
                return 3
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if "signal" in end:  # end the way the command ended, so the caller's shell sees it
        number = int(end["signal"])
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        return 128 + number
    return int(end.get("exit", 3))


def start_in_background(idle: float = IDLE_S) -> None:
    """Start an agent for later commands, detached from this one (no shared streams, its
    own session, none of our environment but what the interpreter and file locations
    need), if the mode allows and the folder is usable. Never fails."""
    import json
    import subprocess

    if mode() == "off":
        return
    # ``-P``: nothing from the working folder on the import path; the agent adopts ours
    env = {k: v for k, v in os.environ.items() if k in KEPT or k.startswith("PYTHON")}
    env[ENV_PATH] = json.dumps(sys.path)
    try:
        socket_path(agent_dir(create=True))
        subprocess.Popen([sys.executable, "-P", "-m", "mltrail.agent", str(idle)], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)
    except (AgentUnavailable, OSError):
        pass


def status() -> dict[str, Any]:
    """The agent serving this installation, or why there is none."""
    info: dict[str, Any] = {"mode": mode(), "env": ENV_MODE}
    try:
        path = socket_path(agent_dir())
    except AgentUnavailable as exc:
        return dict(info, running=False, reason=str(exc))
    info["socket"] = str(path)
    conn = _connect()
    if conn is None:
        return dict(info, running=False, reason="no agent serves this installation")
    with conn:
        conn.settimeout(10)
        try:
            send_message(conn, {"op": "status"})
            answer, _ = recv_message(conn)
        except (OSError, EOFError, ValueError):
            return dict(info, running=False, reason="the agent did not answer")
    return dict(info, running=True, **answer)


def stop(timeout: float = 10.0) -> dict[str, Any]:
    """Stop the agent serving this installation; wait until its socket is gone."""
    before = status()
    if not before["running"]:
        return before
    conn = _connect()
    if conn is not None:
        with conn, contextlib.suppress(OSError, EOFError, ValueError):
            conn.settimeout(10)
            send_message(conn, {"op": "stop"})
            recv_message(conn)
    deadline = time.monotonic() + timeout
    while Path(before["socket"]).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return dict(status(), stopped=before["pid"])


def start(idle: float = IDLE_S, timeout: float = 60.0) -> dict[str, Any]:
    """Start an agent (unless one runs) and wait until it answers."""
    if mode() == "off":
        raise AgentUnavailable(f"{ENV_MODE} is off")
    socket_path(agent_dir(create=True))
    if not status()["running"]:
        start_in_background(idle)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status()
        if now["running"]:
            return now
        time.sleep(0.05)
    return dict(status(), reason=f"no agent answered within {timeout:.0f} s")
