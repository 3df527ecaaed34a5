"""Capture one step of a user's own work: what went in, what came out, how.

``activity(...)`` (a ``with`` block) and :func:`run_command` (behind ``mltrail run``)
hash the inputs before and the outputs after, record the command, times, git commit and
Python, build an in-toto Statement v1 with the SLSA provenance predicate, sign it (DSSE)
with the participant's Ethereum and Ed25519 keys (publishing the Ed25519 key in its
on-chain profile the first time), keep it in the content store and register each output
with the inputs as parents. Local details (absolute paths, working folder, host, user,
the installed package list) go into the statement only with ``capture_env=True``; by
default paths are relative to the working folder (or the bare file name outside it).
A failed step, an input that changed while the step ran, or a missing output registers
nothing. This module never decides
what is allowed (the contract does) and never reads outputs before the step ends.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import platform
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError, RefusedError
from mltrail.provenance import attest, signing
from mltrail.provenance.artefacts import Hashed, register_path
from mltrail.provenance.digest import canonical_json

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state(cwd: str | Path | None = None) -> dict[str, Any] | None:
    """The commit, dirty flag and remote of the git work tree around ``cwd``, if any."""
    here = Path(cwd or os.getcwd())
    commit = _git(here, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(here, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "remote": _git(here, "remote", "get-url",
                                                                     "origin")}


def packages() -> list[str]:
    """``name==version`` of every installed distribution, sorted.

    Read from the ``*.dist-info`` / ``*.egg-info`` folder names on ``sys.path`` (what
    ``importlib.metadata`` finds, without parsing hundreds of METADATA files)."""
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            stem, dot, ext = name.rpartition(".")
            if not dot or ext not in ("dist-info", "egg-info"):
                continue
            dist, _, version = stem.partition("-")
            key = re.sub(r"[-_.]+", "-", dist).lower()  # PEP 503 normal form
            if dist and version and key not in found:
                found[key] = f"{key}=={version}"
    return sorted(found.values())


def environment(full: bool = False) -> dict[str, Any]:
    """Python, platform and the digest of the package list; with ``full``, also the host,
    the user and the package list itself (local details, left out by default)."""
    pkgs = packages()
    env: dict[str, Any] = {
        "python": sys.version.split()[0], "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages_digest": "sha256:" + hashlib.sha256("\n".join(pkgs).encode()).hexdigest()}
    if full:
        env.update(host=socket.gethostname(), user=getpass.getuser(), packages=pkgs)
    return env


def shown_path(path: Path, workdir: Path) -> str:
    """A path as a statement shows it without local details: relative to the working
    folder when inside it (POSIX separators), else the file's bare name."""
    full, base = path.resolve(), workdir.resolve()
    if full.is_relative_to(base) and full != base:
        return full.relative_to(base).as_posix()
    return full.name or str(path)


@dataclass
class StepResult:
    """What a captured step registered."""

    step: str
    statement_digest: str
    envelope_digest: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "statement_digest": self.statement_digest,
                "envelope_digest": self.envelope_digest, "inputs": self.inputs,
                "outputs": self.outputs}


def _hash_all(paths: Sequence[Path], what: str) -> list[Hashed]:
    out = []
    for p in paths:
        if not p.exists():
            raise InputError(f"{what} not found: {p}")
        out.append(Hashed.of(p))
    return out


def _input_artefact(led: Ledger, h: Hashed, kind: str) -> tuple[str, dict[str, Any] | None]:
    """An input's artefact id (an existing live one, ours first), registering it if none."""
    live = [a for a in led.find_by_digest(h.digest) if a.state != led.lifecycle.terminal]
    mine = [a for a in live if a.owner.lower() == led.address.lower()]
    if mine or live:
        return (mine or live)[-1].id, None
    reg, _ = register_path(led, h, kind)
    return reg.artefact_id, reg.as_dict()


class Activity:
    """A captured step. Use as ``with activity("train", inputs=..., outputs=...) as act:``.

    ``act.params`` may be updated inside the block; ``act.result`` holds the
    :class:`StepResult` after a clean exit. An exception inside the block registers
    nothing and propagates.
    """

    def __init__(self, step: str, inputs: Sequence[str | os.PathLike[str]] = (),
                 outputs: Sequence[str | os.PathLike[str]] = (),
                 params: dict[str, Any] | None = None, *, ledger: Ledger | None = None,
                 kind: str = "model", input_kind: str = "dataset",
                 command: Sequence[str] | None = None, workdir: str | Path | None = None,
                 extra_internal: dict[str, Any] | None = None,
                 code: Sequence[str | os.PathLike[str]] = (),
                 times: tuple[str, str] | None = None, capture_env: bool = False,
                 output_kinds: Sequence[str] | None = None) -> None:
        if not step or len(step) > 200:
            raise InputError("a step needs a name of 1 to 200 characters")
        if not outputs:
            raise InputError(f"step {step!r} names no output (-o PATH)")
        self.step, self.kind, self.input_kind = step, kind, input_kind
        self.inputs = [Path(p) for p in inputs]
        self.outputs = [Path(p) for p in outputs]
        self.params: dict[str, Any] = dict(params or {})
        self.command = list(command) if command is not None else None
        self.workdir = Path(workdir or os.getcwd())
        self.extra_internal = extra_internal or {}
        self.code = [Path(p) for p in code]  # hashed as dependencies, never registered
        self.times = times  # (started, finished) of work done elsewhere (imports)
        self.capture_env = capture_env  # local details into the statement
        if output_kinds is not None and len(output_kinds) != len(self.outputs):
            raise InputError("one kind per output, or none")
        self.output_kinds = list(output_kinds) if output_kinds is not None \
            else [kind] * len(self.outputs)
        self.exit_code: int | None = None
        self.result: StepResult | None = None
        self._ledger, self._own = ledger, ledger is None
        self._before: list[Hashed] = []
        self._code: list[Hashed] = []
        self._started = ""

    # -- the with block ---------------------------------------------------------------------

    def __enter__(self) -> Activity:
        self._before = _hash_all(self.inputs, "input")
        self._code = _hash_all(self.code, "code file")
        canonical_json(self.params)  # parameters must be JSON now, not after the work
        self._started = _now()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.result = self.finish()

    def finish(self) -> StepResult:
        """Check the inputs did not change, hash the outputs, sign and register."""
        finished = _now()
        if self.times:
            self._started, finished = self.times
        after = _hash_all(self.inputs, "input")
        changed = [str(b.path) for b, a in zip(self._before, after, strict=True)
                   if a.digest != b.digest]
        if changed:
            raise RefusedError(f"input changed while step {self.step!r} ran: "
                               f"{', '.join(changed)}; nothing registered")
        outs = _hash_all(self.outputs, "output")
        led = self._ledger
        if led is None:
            from mltrail.ledger.client import Ledger

            led = Ledger.open()
        try:
            return self._record(led, outs, finished)
        finally:
            if self._own:
                led.close()

    def _statement(self, led: Ledger, outs: list[Hashed], finished: str) -> dict[str, Any]:
        full = self.capture_env

        def name(h: Hashed) -> str:
            return str(h.path.resolve()) if full else shown_path(h.path, self.workdir)

        deps = [attest.resource(name(h), h.digest, h.path.resolve().as_uri() if full else None)
                for h in self._before + self._code]
        git = git_state(self.workdir)
        if git:
            code = {"name": "code", "digest": {"gitCommit": git["commit"]}}
            if git["remote"]:
                code["uri"] = f"git+{git['remote']}@{git['commit']}"
            deps.append(code)
        internal: dict[str, Any] = {"environment": environment(full), "git": git,
                                    **self.extra_internal}
        if full:
            internal["workdir"] = str(self.workdir)
        if self.command is not None:
            internal["command"] = self.command
            internal["exitCode"] = self.exit_code
        return attest.statement(
            [attest.resource(name(h), h.digest) for h in outs],
            {"step": self.step, "parameters": self.params}, internal, deps,
            builder=f"mltrail:{led.address}", invocation=str(uuid.uuid4()),
            started=self._started, finished=finished)

    def _files(self, hashed: list[Hashed]) -> dict[str, str]:
        """Per-file digests (a folder's files under its shown name) for an in-toto link."""
        out = {}
        for h in hashed:
            shown = str(h.path.resolve()) if self.capture_env \
                else shown_path(h.path, self.workdir)
            if h.manifest is None:
                out[shown] = h.digest
            else:
                out.update({f"{shown}/{rel}": d for rel, d in h.manifest.items()})
        return out

    def _record(self, led: Ledger, outs: list[Hashed], finished: str) -> StepResult:
        stmt = self._statement(led, outs, finished)
        signing.publish(led)  # the Ed25519 key in the profile, once
        envelope = attest.sign(led.account, stmt, led.signing_key)
        env_digest = led.home.store.put(canonical_json(envelope))
        link = attest.sign(led.account, attest.link(
            self.step, self._files(self._before + self._code), self._files(outs),
            self.command), led.signing_key)
        link_digest = led.home.store.put(canonical_json(link))
        result = StepResult(self.step, attest.statement_digest(envelope), env_digest)
        parents = []
        for h in self._before:
            aid, reg = _input_artefact(led, h, self.input_kind)
            parents.append(aid)
            result.inputs.append({"path": str(h.path), "digest": h.digest, "artefact_id": aid,
                                  "registered": reg})
        activity = {"step": self.step, "statement": result.statement_digest,
                    "envelope": env_digest, "link": link_digest}
        for h, kind in zip(outs, self.output_kinds, strict=True):
            out, _ = register_path(led, h, kind, parents, extra={"activity": activity})
            result.outputs.append({"path": str(h.path), "digest": h.digest,
                                   "artefact_id": out.artefact_id, "kind": kind,
                                   **out.as_dict()})
        return result


def activity(step: str, inputs: Sequence[str | os.PathLike[str]] = (),
             outputs: Sequence[str | os.PathLike[str]] = (),
             params: dict[str, Any] | None = None, **kw: Any) -> Activity:
    """Capture a step of Python code::

        with mltrail.activity("train", inputs=["data.npz"], outputs=["model.pt"],
                              params={"lr": 0.1}) as act:
            train(...)
        print(act.result.outputs[0]["artefact_id"])

    The home is found like git's and the key unlocked with ``$MLTRAIL_PASSWORD`` unless
    ``ledger=`` is given.
    """
    return Activity(step, inputs, outputs, params, **kw)


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream (tests, notebooks)
        return 2


def run_command(led: Ledger, step: str, command: Sequence[str],
                inputs: Sequence[str | os.PathLike[str]], outputs: Sequence[str | os.PathLike[str]],
                params: dict[str, Any] | None = None, kind: str = "model",
                input_kind: str = "dataset", stdout_to_stderr: bool = False,
                code: Sequence[str | os.PathLike[str]] = (),
                capture_env: bool = False) -> tuple[int, StepResult | None]:
    """Run ``command`` (its output streamed live) as a captured step.

    Returns ``(exit code, result)``; the result is None (nothing registered) when the
    command failed. ``stdout_to_stderr`` keeps the command's output off our stdout (for
    ``--json``); ``capture_env`` puts local details into the statement."""
    if not command:
        raise InputError("no command to run: put it after '--'")
    act = Activity(step, inputs, outputs, params, ledger=led, kind=kind,
                   input_kind=input_kind, command=command, code=code,
                   capture_env=capture_env)
    act.__enter__()
    try:
        proc = subprocess.run(list(command), check=False,
                              stdout=_stderr_fd() if stdout_to_stderr else None)
    except FileNotFoundError:
        raise InputError(f"command not found: {command[0]}") from None
    except PermissionError:
        raise InputError(f"command not executable: {command[0]}") from None
    act.exit_code = proc.returncode
    if proc.returncode != 0:
        return proc.returncode, None
    return 0, act.finish()
