"""The agent process: load the libraries once, then fork one child per command.

For each connection the agent forks a *handler*, which reads the request and forks the
*command* process; the handler reports the command's pid to the caller, waits for it
(and for the caller to go away, which ends the command with SIGTERM) and reports how it
ended. The command process takes over the caller's descriptors, environment, folder,
umask and argument list, and leaves the agent's stack with ``SystemExit`` so that the
interpreter ends it as it ends any command (threads joined, ``atexit`` run, streams
flushed).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from mltrail.agent import (
    ENV_PATH,
    IDLE_S,
    MAX_FDS,
    agent_dir,
    fingerprint,
    install_key,
    process_context,
    recv_message,
    send_message,
    socket_path,
)
from mltrail.agent.caller import admit, become

# What a ledger command imports, except PyTorch (``pol``): a process that forks must not
# have started its thread pools, and PyTorch would triple the agent's memory.
PRELOAD = (
    "mltrail.cli.main", "mltrail.cli.fast", "mltrail.cli.core", "mltrail.cli.ids",
    "mltrail.cli.roles", "mltrail.cli.ledger_cmd", "mltrail.cli.provenance",
    "mltrail.cli.audit", "mltrail.cli.oracle", "mltrail.cli.node", "mltrail.cli.serve",
    "mltrail.cli.agent_cmd", "mltrail.ledger.embedded", "mltrail.ledger.client",
    "mltrail.ledger.setup", "mltrail.ledger.check", "mltrail.ledger.rpc",
    "mltrail.provenance.artefacts", "mltrail.config_models", "mltrail.identity",
    "rich.console", "rich.table", "rich.tree", "rich.markup",
)


def serve(idle: float = IDLE_S) -> None:
    """Run the agent for this installation until ``idle`` seconds pass without a command
    or SIGTERM. Returns at once when another agent already serves the same code."""
    directory = Path(agent_dir(create=True))
    fp = fingerprint()
    os.chdir("/")  # hold no caller's folder; each command takes its caller's
    path = Path(socket_path(str(directory), fp))
    lock = open(path.with_suffix(".lock"), "a")  # noqa: SIM115 - held for the agent's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return
    for name in PRELOAD:
        importlib.import_module(name)
    gc.freeze()  # the loaded modules are never collected: children neither scan nor copy them
    _stop_older(directory, path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(64)
    # handlers write one byte here per command they start: that count, and the time of the
    # last one, are what status reports and what the idle timeout is measured from
    # (``agent status`` itself does not keep an agent alive)
    ran_r, ran_w = os.pipe()
    # SIGTERM only writes a byte here: an exception raised from the handler is lost when
    # the signal lands in an at-fork hook (logging's, after each fork), which left 2 of
    # 29 agents running after ``agent stop`` under load
    stop_r, stop_w = os.pipe()
    me, started, last, commands = os.getpid(), time.time(), time.monotonic(), 0
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    signal.signal(signal.SIGTERM, lambda _sig, _frame: os.write(stop_w, b"s"))
    info = {"pid": me, "socket": str(path), "fingerprint": fp, "idle_s": idle,
            "started": started, "context": process_context()}
    try:
        while (remaining := last + idle - time.monotonic()) > 0:
            ready, _, _ = select.select([ran_r, stop_r, listener.fileno()], [], [], remaining)
            if stop_r in ready:
                break
            if ran_r in ready:
                commands += len(os.read(ran_r, 4096))
                last = time.monotonic()
            if listener.fileno() not in ready:
                continue
            conn, _ = listener.accept()
            if not _same_user(conn):
                conn.close()
                continue
            if os.fork() == 0:
                listener.close()
                lock.close()
                for fd in (ran_r, stop_r, stop_w):
                    os.close(fd)
                _handle(conn, dict(info, commands=commands), ran_w)  # returns in a command
                return
            conn.close()
    finally:
        if os.getpid() == me:  # not in a handler or a command leaving through here
            for own in (path, path.with_suffix(".lock")):
                with contextlib.suppress(FileNotFoundError):
                    own.unlink()
            lock.close()


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
    _pid, uid, _gid = (int.from_bytes(creds[i:i + 4], sys.byteorder) for i in (0, 4, 8))
    return uid == os.getuid()


def _stop_older(directory: Path, current: Path) -> None:
    """Stop agents of this installation that serve other (older) code."""
    for other in directory.glob(f"agent-{install_key()}-*.sock"):
        if other == current:
            continue
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2)
                s.connect(str(other))
                send_message(s, {"op": "stop"})
        except OSError:
            with contextlib.suppress(OSError):
                other.unlink()


def _handle(conn: socket.socket, info: dict[str, Any], ran: int) -> None:
    """In the handler: answer one request. Returns only in the command process."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        conn.settimeout(10)
        request, fds = recv_message(conn, max_fds=MAX_FDS)
        conn.settimeout(None)
    except (OSError, EOFError, ValueError):
        os._exit(0)
    op = request.get("op")
    if op == "status":
        public = {k: v for k, v in info.items() if k != "context"}
        send_message(conn, dict(public, uptime_s=round(time.time() - info["started"], 1)))
        os._exit(0)
    if op == "stop":
        os.kill(info["pid"], signal.SIGTERM)
        send_message(conn, {"stopping": info["pid"]})
        os._exit(0)
    if op != "run":
        os._exit(0)
    reason = admit(request, fds, info["context"])
    if reason is not None:
        with contextlib.suppress(OSError):
            send_message(conn, {"decline": reason})
        os._exit(0)
    send_message(conn, {"accepted": True})  # from here on, the caller never runs it itself
    os.write(ran, b"r")
    os.close(ran)
    pid = os.fork()
    if pid == 0:
        conn.close()
        try:
            become(request, fds)
        except OSError as exc:  # e.g. its folder is gone since it asked
            os.write(2, f"error: the agent cannot run this command as you: {exc}\n".encode())
            os._exit(2)
        return
    with contextlib.suppress(OSError):
        os.setpgid(pid, pid)  # as the child does: whichever runs first
    for fd in fds:
        os.close(fd)
    try:
        send_message(conn, {"pid": pid})
        send_message(conn, _wait(pid, conn))
    except OSError:
        pass
    os._exit(0)


def _wait(pid: int, conn: socket.socket) -> dict[str, int]:
    """Wait for the command; if the caller goes away first, end the command and what it
    started (SIGTERM to its process group)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # Linux before 5.3: wait without watching the caller
        _, status = os.waitpid(pid, 0)
        return _ended(status)
    while True:
        ready, _, _ = select.select([pidfd, conn.fileno()], [], [])
        if conn.fileno() in ready and not conn.recv(1):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            ready = [pidfd]  # now wait for it to end
            select.select([pidfd], [], [])
        if pidfd in ready:
            _, status = os.waitpid(pid, 0)
            os.close(pidfd)
            return _ended(status)


def _ended(status: int) -> dict[str, int]:
    if os.WIFSIGNALED(status):
        return {"signal": os.WTERMSIG(status)}
    return {"exit": os.waitstatus_to_exitcode(status)}


def _run_command() -> NoReturn:
    """In the command process: run the command, then end as an interpreter ends (threads
    joined, ``atexit`` run, streams flushed) but without tearing down the agent's
    thousand modules one by one, which took 0.3 s per command (strace, 2026-11-25)."""
    from mltrail.cli.main import run

    code = 0
    try:
        run()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # as the interpreter would: the traceback (``--debug``), exit 1
        sys.excepthook(*sys.exc_info())
        code = 1
    shutdown = getattr(threading, "_shutdown", None)  # what Py_FinalizeEx does first
    if callable(shutdown):
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as the interpreter: a failed flush at exit is status 120
    os._exit(code)


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    sys.stderr.write(f"{code}\n")
    return 1


def main(argv: list[str] | None = None) -> None:
    """``python -m mltrail.agent [IDLE_SECONDS]``: serve, then run the command if this
    process became one."""
    args = sys.argv[1:] if argv is None else argv
    idle = float(args[0]) if args else IDLE_S
    starter_path = os.environ.pop(ENV_PATH, None)
    if starter_path:  # import exactly what the starting command would (started with -P)
        sys.path[:] = json.loads(starter_path)
    pid = os.getpid()
    serve(idle)
    if os.getpid() != pid:  # the command process
        _run_command()
