"""Content-addressed object store under ``<home>/objects``.

Blobs are stored by their SHA-256 as ``objects/ab/cdef...``. Writes are atomic (temp
file + rename), so a crash never leaves a half-written object. The store holds bytes
only; what they mean is recorded on the ledger.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mltrail._fs import atomic_write
from mltrail.errors import NotFoundError, VerificationError
from mltrail.provenance.digest import digest_bytes, to_bytes32


class ContentStore:
    """A folder of immutable blobs keyed by digest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._fresh: list[list[Path]] = []  # objects first stored inside discard_on_failure

    @contextmanager
    def discard_on_failure(self) -> Iterator[None]:
        """Objects first stored inside the block are removed again if it raises, so a
        refused write leaves no orphan blobs behind."""
        self._fresh.append([])
        try:
            yield
        except BaseException:
            for path in self._fresh[-1]:
                path.unlink(missing_ok=True)
            raise
        finally:
            self._fresh.pop()

    def _path(self, digest: str) -> Path:
        hexd = to_bytes32(digest).hex()
        return self.root / hexd[:2] / hexd[2:]

    def put(self, data: bytes) -> str:
        """Store ``data``; return its digest. Idempotent."""
        digest = digest_bytes(data)
        path = self._path(digest)
        if not path.exists():
            atomic_write(path, data)
            if self._fresh:
                self._fresh[-1].append(path)
        return digest

    def put_file(self, src: str | os.PathLike[str]) -> str:
        """Store a file's bytes; return the digest."""
        return self.put(Path(src).read_bytes())

    def has(self, digest: str) -> bool:
        return self._path(digest).exists()

    def get(self, digest: str) -> bytes:
        """The bytes for ``digest``, re-hashed to check they were not altered."""
        path = self._path(digest)
        if not path.exists():
            raise NotFoundError(f"object not in store: {digest}")
        data = path.read_bytes()
        if digest_bytes(data) != "sha256:" + to_bytes32(digest).hex():
            raise VerificationError(f"stored object is corrupt: {digest}")
        return data
