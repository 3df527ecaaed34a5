"""The one exception tree of mltrail.

Every error a user can meet is a :class:`MltrailError` with a one-line message and an
exit code (DESIGN.md): 1 when a verification failed, 2 for bad input, a usage error or a
refused operation. Exit code 3 means an internal error: an exception outside this tree,
which is a bug in mltrail (the CLI prints "internal error (please report)"; ``--debug``
shows the traceback). No input may ever cause it. Nothing here prints or exits; the CLI
does that.
"""

from __future__ import annotations


class MltrailError(Exception):
    """Base of all mltrail errors. ``str(err)`` is the one line a user sees."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        # one line whatever the message quotes (file names, values from a document)
        message = message.replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The message plus an optional hint on how to fix it."""
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class InputError(MltrailError):
    """Bad input: a missing file, a malformed document, an unknown id."""


class NotFoundError(InputError):
    """Something named by the user does not exist (artefact id, identity, path)."""


class RefusedError(MltrailError):
    """An operation the rules refuse: illegal transition, missing role, revoked artefact."""


class AuthError(RefusedError):
    """Wrong password or unusable key."""


class LedgerError(MltrailError):
    """The ledger backend failed or disagrees with the home (unreachable RPC, chain mismatch)."""


class NetworkError(MltrailError):
    """A remote peer could not be reached or answered nonsense (a node, a service, an auditor)."""


class VerificationError(MltrailError):
    """A check failed: content mismatch, proof rejected, fraud detected. Exit code 1."""

    exit_code = 1
