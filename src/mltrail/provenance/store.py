"""Content-addressed object store under ``<home>/objects``.

Blobs are stored by their SHA-256 as ``objects/ab/cdef...``. Writes are atomic (temp
file + rename), so a crash never leaves a half-written object. The store holds bytes
only; what they mean is recorded on the ledger.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mltrail.errors import NotFoundError, VerificationError
from mltrail.provenance.digest import digest_bytes, to_bytes32


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename.

    Never half-written. ``durable`` also fsyncs before the rename (so the bytes survive a
    power cut, not only a crash); pass False for files rewritten often whose loss a later
    digest check would reveal.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ContentStore:
    """A folder of immutable blobs keyed by digest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        hexd = to_bytes32(digest).hex()
        return self.root / hexd[:2] / hexd[2:]

    def put(self, data: bytes) -> str:
        """Store ``data``; return its digest. Idempotent."""
        digest = digest_bytes(data)
        path = self._path(digest)
        if not path.exists():
            atomic_write(path, data)
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
