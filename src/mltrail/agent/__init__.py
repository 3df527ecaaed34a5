"""A warm agent that runs ``mltrail`` commands in a process forked with the libraries loaded.

A write command spends most of its time importing: py-evm alone (with the BLS12-381
pairing tables it builds at import for precompiles the embedded chain never runs),
pydantic, Typer and Rich take about 1 s, and the write itself about 0.1 s
(``bench/cli.py``). The agent imports them once and then, for each command, forks a child
that becomes the caller: the caller's argument list, environment, working folder, umask
and its own stdin, stdout and stderr (passed as file descriptors over a Unix socket). The
child runs the ordinary command code, so locks, crash safety and output are those of a
command run in place; the caller only relays signals and exits with the child's status.

Nothing here decides a rule or touches a ledger. The agent serves one user (the socket's
folder must be theirs with no access for others, and each connection's peer uid is
checked), one installation (the socket name is a fingerprint of the interpreter, the
import path and mltrail's own source files, so an upgrade or an edit is never served by
old code) and exits after ``idle`` seconds without a command. ``MLTRAIL_AGENT=off`` turns
it off; it is also not used when a password prompt may be needed (stdin is a terminal
and ``MLTRAIL_PASSWORD`` is unset), because a forked child has no controlling terminal.

This module is imported by every ``mltrail`` command before anything else, so it uses the
standard library only and stays small.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import sys
import zlib

# not ``typing``/``pathlib``: every command imports this module first (about 10 ms)
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ENV_MODE = "MLTRAIL_AGENT"  # auto (default): use one, start one when absent; off: never
ENV_DIR = "MLTRAIL_AGENT_DIR"  # the agents' folder (default: $XDG_RUNTIME_DIR/mltrail)
ENV_PATH = "MLTRAIL_AGENT_PATH"  # the caller's import path, which a new agent adopts
# What a new agent's environment keeps of its starter's (never a password): what the
# interpreter reads at start (PYTHON*), and what locates files and locales.
KEPT = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "XDG_RUNTIME_DIR", ENV_DIR)
OFF = frozenset({"0", "off", "no", "false"})
IDLE_S = 900.0
_HEADER = struct.Struct("!I")
MAX_MESSAGE = 4 * 1024 * 1024
MAX_FDS = 200  # descriptors passed with one command (SCM_RIGHTS takes up to 253)


class AgentUnavailable(Exception):
    """No agent can be used here; the message says why (for ``mltrail agent status``)."""


def mode() -> str:
    """``off`` when ``$MLTRAIL_AGENT`` says so (0, off, no, false), else ``auto``."""
    return "off" if os.environ.get(ENV_MODE, "").strip().lower() in OFF else "auto"


def agent_dir(create: bool = False) -> str:
    """The folder holding this user's agent sockets, which must be a real folder owned by
    the user with no access for anyone else (else another user could stand in for the
    agent and read the passwords sent to it)."""
    explicit = os.environ.get(ENV_DIR)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if explicit:
        if not os.path.isabs(explicit):
            raise AgentUnavailable(f"{ENV_DIR}={explicit!r} is not an absolute path")
        d = explicit
    elif runtime and os.path.isabs(runtime):
        d = os.path.join(runtime, "mltrail")
    else:
        d = f"/tmp/mltrail-agent-{os.getuid()}"
    if create:
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise AgentUnavailable(f"cannot make {d}: {exc.strerror}") from None
    try:
        st = os.lstat(d)
    except OSError:
        raise AgentUnavailable(f"{d} does not exist") from None
    if not stat.S_ISDIR(st.st_mode):
        raise AgentUnavailable(f"{d} is not a folder")
    if st.st_uid != os.getuid():
        raise AgentUnavailable(f"{d} belongs to uid {st.st_uid}, not to uid {os.getuid()}")
    if st.st_mode & 0o077:
        raise AgentUnavailable(f"{d} is open to other users (mode {st.st_mode & 0o777:o})")
    return d


def fingerprint(package: str | None = None) -> str:
    """What the agent's loaded code depends on: the interpreter and the ``PYTHON*``
    variables it read at start, the import path after the script's own folder (folders
    change when a package is installed or removed) and mltrail's source files (mtime and
    size); and the process context (:func:`process_context`), so a caller in a sandbox
    starts its own agent there. A different fingerprint is a different agent."""
    parts = [sys.executable, sys.version, process_context(),
             *sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PYTHON"))]
    for entry in sys.path[1:]:  # [0] is the script's folder or the working folder
        try:
            parts.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
        except OSError:
            parts.append(entry)
    package = package or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root, dirs, files in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            parts.append(f"{root}/{name}:{st.st_mtime_ns}:{st.st_size}")
    blob = "\n".join(parts).encode("utf-8", "surrogateescape")
    return f"{zlib.crc32(blob):08x}{zlib.adler32(blob):08x}"


_CONTEXT: list[str] = []  # this process's context, read once (fingerprint and request)


def process_context() -> str:
    """What a process runs as and inside, beyond its uid: ids and groups, capabilities,
    no-new-privileges, seccomp, security label, cgroup and namespaces. The agent serves
    only callers with its own context, so a command never leaves a sandbox, a cgroup (its
    memory or CPU limits) or a namespace its caller is in. Read once per process."""
    if not _CONTEXT:
        _CONTEXT.append(_read_context())
    return _CONTEXT[0]


def _read_context() -> str:
    parts = [f"ids {os.getuid()} {os.geteuid()} {os.getgid()} {os.getegid()} "
             f"{sorted(os.getgroups())}"]
    for name in ("cgroup", "attr/current"):
        try:
            with open(f"/proc/self/{name}", "rb") as fh:
                parts.append(fh.read().decode("utf-8", "replace"))
        except OSError:
            parts.append(f"{name} -")
    for ns in ("cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"):
        try:
            parts.append(os.readlink(f"/proc/self/ns/{ns}"))
        except OSError:
            parts.append(f"{ns} -")
    try:
        with open("/proc/self/status", encoding="utf-8", errors="replace") as fh:
            parts += [line for line in fh.read().splitlines()
                      if line.startswith(("Cap", "NoNewPrivs", "Seccomp"))]
    except OSError:
        parts.append("status -")
    return "\n".join(parts)


def install_key() -> str:
    """The part of the socket name that names this installation (its interpreter)."""
    return f"{zlib.crc32(sys.executable.encode('utf-8', 'surrogateescape')):08x}"


def socket_path(directory: str, fp: str | None = None) -> str:
    """The socket of the agent for this installation and code."""
    path = os.path.join(directory, f"agent-{install_key()}-{fp or fingerprint()}.sock")
    if len(os.fsencode(path)) > 107:  # sun_path holds 108 bytes with the final NUL
        raise AgentUnavailable(f"{path} is too long for a Unix socket; set {ENV_DIR}")
    return path


def send_message(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None
                 ) -> None:
    """One length-prefixed JSON message, with file descriptors attached to its first byte."""
    data = json.dumps(message).encode("utf-8", "surrogateescape")
    blob = _HEADER.pack(len(data)) + data
    sent = socket.send_fds(sock, [blob], fds) if fds else sock.send(blob)
    if sent < len(blob):
        sock.sendall(blob[sent:])


def recv_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any], list[int]]:
    """The next message and any file descriptors sent with it; EOFError at end of stream."""
    fds: list[int] = []
    buf = b""
    while len(buf) < _HEADER.size:
        chunk = _recv(sock, _HEADER.size - len(buf), max_fds, fds)
        buf += chunk
    (size,) = _HEADER.unpack(buf)
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes")
    body = b""
    while len(body) < size:
        body += _recv(sock, size - len(body), max_fds, fds)
    message = json.loads(body.decode("utf-8", "surrogateescape"))
    if not isinstance(message, dict):
        raise ValueError("message is not an object")
    return message, fds


def _recv(sock: socket.socket, n: int, max_fds: int, fds: list[int]) -> bytes:
    if max_fds and not fds:
        data, got, _flags, _addr = socket.recv_fds(sock, n, max_fds)
        fds.extend(got)
    else:
        data = sock.recv(n)
    if not data:
        raise EOFError
    return data
