"""The caller's side: hand a command to the agent, relay signals, report how it ended.

:func:`forward` leaves the command to run in place whenever the agent is off or absent,
a password prompt may be needed, a standard stream or the working folder is unusable, or
the agent declines (another process context, limits it cannot apply, a request it finds
malformed). The agent declines or accepts before anything runs; once a command was
accepted it is never run a second time here, whatever happens to the agent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time

from mltrail.agent import (
    ENV_MODE,
    ENV_PATH,
    IDLE_S,
    KEPT,
    MAX_FDS,
    AgentUnavailable,
    agent_dir,
    mode,
    process_context,
    recv_message,
    send_message,
    socket_path,
)

TYPE_CHECKING = False  # not ``typing``: imported by every command (see mltrail.agent)
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

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
        s.connect(path)
    except OSError:
        s.close()
        return None
    return s


def _streams() -> list[list[str]]:
    return [[getattr(stream, "encoding", None) or "utf-8",
             getattr(stream, "errors", None) or "strict"]
            for stream in (sys.stdin, sys.stdout, sys.stderr)]


class Outcome:
    """What :func:`forward` did: the command's exit status if the agent ran it (else None,
    and the command runs here), and whether an agent should be started for later ones."""

    __slots__ = ("code", "start_agent")

    def __init__(self, code: int | None, start_agent: bool = False) -> None:
        self.code, self.start_agent = code, start_agent


def forward(argv: list[str]) -> Outcome:
    """Run ``mltrail ARGV`` in the agent if one serves this installation."""
    if not usable(argv):
        return Outcome(None)
    streams = _streams()
    fds = _open_fds()
    try:
        cwd = os.getcwd()
    except OSError:
        return Outcome(None)
    if fds is None:
        return Outcome(None)
    conn = _connect()
    if conn is None:
        return Outcome(None, start_agent=True)
    with conn:
        try:
            send_message(conn, _request(argv, cwd, streams, fds), fds)
            answer, _ = recv_message(conn)
        except (OSError, EOFError, ValueError):  # nothing ran: the agent went away first
            return Outcome(None, start_agent=True)
        if "decline" in answer:  # nothing ran: this caller is not one the agent may serve
            return Outcome(None)
        return Outcome(_follow(conn))


def _request(argv: list[str], cwd: str, streams: list[list[str]], fds: list[int]
             ) -> dict[str, Any]:
    """Everything of this process that the command process must take over: beyond the
    arguments, environment, folder and streams, its other open descriptors (a path like
    ``/dev/fd/7`` must name the same file), umask, resource limits, niceness, ignored and
    blocked signals, and its context (the agent refuses another one)."""
    import resource

    umask = os.umask(0)
    os.umask(umask)
    limits = {name: list(resource.getrlimit(getattr(resource, name)))
              for name in dir(resource) if name.startswith("RLIMIT_")}
    ignored = [int(s) for s in signal.valid_signals()
               if s not in (signal.SIGKILL, signal.SIGSTOP)
               and signal.getsignal(s) == signal.SIG_IGN]
    blocked = [int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])]
    return {"op": "run", "argv": ["mltrail", *argv], "env": dict(os.environ), "cwd": cwd,
            "umask": umask, "streams": streams, "fds": fds, "limits": limits,
            "nice": os.getpriority(os.PRIO_PROCESS, 0), "context": process_context(),
            "signals": {"ignored": ignored, "blocked": blocked}}


def _open_fds() -> list[int] | None:
    """This process's open descriptors, 0, 1 and 2 first; None when a standard one is
    closed or there are too many to pass in one message."""
    try:
        listed = sorted(int(name) for name in os.listdir("/proc/self/fd"))
    except (OSError, ValueError):
        return None
    fds = []
    for fd in listed:
        try:
            os.fstat(fd)
        except OSError:  # the listing's own descriptor, closed by now
            continue
        fds.append(fd)
    if fds[:3] != [0, 1, 2] or len(fds) > MAX_FDS:
        return None
    return fds


def _follow(conn: socket.socket) -> int:
    """Relay signals to the command's process group until the agent says how it ended."""
    try:
        first, _ = recv_message(conn)
        pid = int(first["pid"])
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        sys.stderr.write(_LOST)
        return 3

    def relay(signum: int, _frame: FrameType | None) -> None:
        try:
            os.killpg(pid, signum)  # the command and the processes it started, as a terminal
        except ProcessLookupError:
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
    info["socket"] = path
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
    """Stop the agent serving this installation; wait until its socket is gone
    (AgentUnavailable if it is still there after ``timeout`` seconds)."""
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
    while os.path.exists(before["socket"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    if os.path.exists(before["socket"]):
        raise AgentUnavailable(f"the agent (pid {before['pid']}) did not stop within "
                               f"{timeout:.0f} s")
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
