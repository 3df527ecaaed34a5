"""Taking the caller's place: what a forked command process must be to run as its caller.

:func:`admit` runs in the agent's handler, before anything of the command runs: it checks
the request's shape and the caller's process context, and applies the caller's resource
limits and niceness to the handler (the command inherits them). Any reason it gives is a
decline: the caller then runs the command in place. :func:`become` runs in the command
process and takes over the caller's descriptors (each at its own number), environment,
folder, umask, signal dispositions and mask, standard streams and argument list, in its
own process group. Neither decides anything about a ledger.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import io
import locale
import os
import resource
import signal
import sys
import time
from typing import Any

_KEYS = {"argv": list, "env": dict, "cwd": str, "umask": int, "streams": list, "fds": list,
         "limits": dict, "nice": int, "context": str, "signals": dict}
_PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)  # what every Python ignores at start-up


def admit(request: dict[str, Any], fds: list[int], context: str) -> str | None:
    """None if the command may run here (the caller's limits and niceness now apply to
    this process), else why not."""
    problem = _shape(request, fds)
    if problem:
        return f"malformed request: {problem}"
    if request["context"] != context:
        return "the caller runs in another process context (ids, capabilities, cgroup, " \
               "namespaces or security label) than the agent"
    try:
        for name, (soft, hard) in request["limits"].items():
            if name.startswith("RLIMIT_") and hasattr(resource, name):
                resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
        os.setpriority(os.PRIO_PROCESS, 0, int(request["nice"]))
    except (OSError, ValueError, TypeError) as exc:
        return f"cannot apply the caller's limits or niceness: {exc}"
    return None


def _shape(request: dict[str, Any], fds: list[int]) -> str | None:
    for key, kind in _KEYS.items():
        if not isinstance(request.get(key), kind):
            return f"{key} missing or not a {kind.__name__}"
    if not all(isinstance(a, str) for a in request["argv"]):
        return "argv holds a non-string"
    if not all(isinstance(k, str) and isinstance(v, str) and k and "=" not in k
               and "\0" not in k + v for k, v in request["env"].items()):
        return "env holds a bad name or value"
    targets = request["fds"]
    if (len(targets) != len(fds) or targets[:3] != [0, 1, 2]
            or not all(isinstance(t, int) and 0 <= t < 65536 for t in targets)
            or len(set(targets)) != len(targets)):
        return "descriptors do not match their numbers"
    streams = request["streams"]
    if len(streams) != 3 or not all(isinstance(s, list) and len(s) == 2 for s in streams):
        return "streams is not three [encoding, errors] pairs"
    try:
        for encoding, errors in streams:
            codecs.lookup(encoding)
            codecs.lookup_error(errors)
    except (LookupError, TypeError) as exc:
        return f"stream encoding: {exc}"
    signals = request["signals"]
    if not all(isinstance(signals.get(k), list) and all(isinstance(n, int) for n in signals[k])
               for k in ("ignored", "blocked")):
        return "signals is not two lists of numbers"
    return None


def become(request: dict[str, Any], fds: list[int]) -> None:
    """In the command process: take the caller's place (raises OSError if it cannot)."""
    os.setpgid(0, 0)  # its own group: a step's ``kill 0`` stays in it; Ctrl-C reaches all
    _place(fds, request["fds"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    with contextlib.suppress(locale.Error):
        locale.setlocale(locale.LC_CTYPE, "")
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    _signals(request["signals"])
    (in_enc, in_err), (out_enc, out_err), (err_enc, err_err) = request["streams"]
    sys.stdin = _stream(0, "r", in_enc, in_err)
    sys.stdout = _stream(1, "w", out_enc, out_err)
    sys.stderr = _stream(2, "w", err_enc, err_err, line=True)
    sys.argv = request["argv"]


def _place(fds: list[int], targets: list[int]) -> None:
    """Put each received descriptor at the caller's number for it: first all above every
    target (so none overwrites another still to be placed), then down to the targets."""
    floor = max(targets) + 1
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, floor) for fd in fds]
    for fd in fds:
        os.close(fd)
    for fd, target in zip(high, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def _signals(caller: dict[str, list[int]]) -> None:
    """The caller's ignored signals stay ignored (``nohup``, background jobs), the rest
    are as at start-up (SIGINT raises KeyboardInterrupt); the caller's mask is kept."""
    ignored = set(caller["ignored"])
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        if sig in ignored or sig in _PYTHON_IGNORES:
            handler: Any = signal.SIG_IGN
        elif sig == signal.SIGINT:
            handler = signal.default_int_handler
        else:
            handler = signal.SIG_DFL
        with contextlib.suppress(OSError, ValueError):
            signal.signal(sig, handler)
    valid = set(signal.valid_signals())
    signal.pthread_sigmask(signal.SIG_SETMASK, [s for s in caller["blocked"] if s in valid])


def _stream(fd: int, mode: str, encoding: str, errors: str,
            line: bool = False) -> io.TextIOWrapper:
    """A standard stream on ``fd`` as Python makes one at start-up."""
    stream = open(fd, mode, encoding=encoding, errors=errors, newline="\n",  # noqa: SIM115
                  closefd=False)
    assert isinstance(stream, io.TextIOWrapper)
    if line or (mode == "w" and os.isatty(fd)):
        stream.reconfigure(line_buffering=True)
    return stream
