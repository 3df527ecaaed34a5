"""API tokens of a node: created once, shown once, stored only as SHA-256 hashes.

A token names an identity of the home (writes are signed with its key) and may be
read-only. ``<home>/node/tokens.json`` holds name, identity, read-only flag, creation
time and the hash; never the token itself. This module never talks to the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from mltrail._fs import atomic_write
from mltrail.config import Home
from mltrail.errors import InputError, NotFoundError

PREFIX = "mlt_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Token(BaseModel):
    """One token's record (the hash, never the secret)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    identity: str
    read_only: bool
    created: int
    sha256: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def node_dir(home: Home) -> Path:
    """Where the node keeps its own files (tokens, blob readers, the last check)."""
    return home.root / "node"


class TokenStore:
    """The tokens of one home."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.path = node_dir(home) / "tokens.json"
        self._cache: tuple[tuple[int, int, int], list[Token]] | None = None

    def _load(self) -> list[Token]:
        """The tokens as the file holds them now (re-parsed whenever it changed: a revoked
        token is refused from the next request on)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return list(self._cache[1])
        try:
            raw = json.loads(self.path.read_text())
            tokens = [Token.model_validate(t) for t in raw]
        except (ValueError, ValidationError, TypeError) as exc:
            raise InputError(f"malformed {self.path}: {exc}") from exc
        self._cache = (stamp, tokens)
        return list(tokens)

    def _save(self, tokens: list[Token]) -> None:
        data = json.dumps([t.model_dump() for t in tokens], indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, data.encode())

    def create(self, name: str, identity: str, read_only: bool = False) -> tuple[Token, str]:
        """A new token for ``identity``; returns its record and the secret (shown once)."""
        from mltrail.identity import address_of

        if not _NAME.match(name):
            raise InputError(f"bad token name {name!r}: use letters, digits, '_', '-', '.'")
        address_of(self.home, identity)  # the identity must exist in this home
        tokens = self._load()
        if any(t.name == name for t in tokens):
            raise InputError(f"token {name!r} already exists", hint="revoke it first")
        secret = PREFIX + secrets.token_urlsafe(32)
        tok = Token(name=name, identity=identity, read_only=read_only, created=int(time.time()),
                    sha256=_hash(secret))
        self._save([*tokens, tok])
        return tok, secret

    def list(self) -> list[Token]:
        return sorted(self._load(), key=lambda t: t.name)

    def revoke(self, name: str) -> Token:
        tokens = self._load()
        found = [t for t in tokens if t.name == name]
        if not found:
            raise NotFoundError(f"no token {name!r}", hint="see 'mltrail token list'")
        self._save([t for t in tokens if t.name != name])
        return found[0]

    def authenticate(self, secret: str) -> Token | None:
        """The token whose hash matches ``secret`` (constant-time compare), else None."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        digest = _hash(secret)
        match = None
        for t in self._load():
            if hmac.compare_digest(t.sha256, digest):
                match = t
        return match
