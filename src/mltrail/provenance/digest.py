"""The one way mltrail hashes things.

Digests are SHA-256, written ``sha256:<64 hex>`` for people and as 32 raw bytes on
chain. Directories are hashed as a sorted manifest of per-file digests (``.git*``
ignored), the shape OpenSSF model signing uses. This module never touches the ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mltrail.errors import InputError, NotFoundError

PREFIX = "sha256:"
_CHUNK = 1 << 20
_HEX = re.compile(r"^(?:sha256:|0x)?([0-9a-fA-F]{64})$")


def digest_bytes(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return PREFIX + hashlib.sha256(data).hexdigest()


def digest_json(obj: Any) -> str:
    """Digest of the canonical JSON form of ``obj`` (sorted keys, no spaces)."""
    return digest_bytes(canonical_json(obj))


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON bytes: sorted keys, compact separators, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_file(path: str | os.PathLike[str]) -> str:
    """Streaming SHA-256 of one file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return PREFIX + h.hexdigest()


def _dir_files(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".git"))
        for name in sorted(filenames):
            if not name.startswith(".git"):
                yield Path(dirpath) / name


def dir_manifest(root: str | os.PathLike[str]) -> dict[str, str]:
    """Per-file digests of a directory, keyed by POSIX relative path, sorted."""
    base = Path(root)
    entries = {p.relative_to(base).as_posix(): digest_file(p) for p in _dir_files(base)}
    return dict(sorted(entries.items()))


def digest_path(path: str | os.PathLike[str]) -> str:
    """Digest of a file, or of a directory's sorted per-file manifest."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"path does not exist: {p}")
    if p.is_dir():
        return digest_json({"files": dir_manifest(p)})
    return digest_file(p)


def to_bytes32(digest: str) -> bytes:
    """The 32 raw bytes of a ``sha256:<hex>`` (or bare hex) digest."""
    m = _HEX.match(digest.strip())
    if not m:
        raise InputError(f"not a sha256 digest: {digest!r}")
    return bytes.fromhex(m.group(1))


def from_bytes32(raw: bytes) -> str:
    """``sha256:<hex>`` from 32 raw bytes."""
    if len(raw) != 32:
        raise InputError(f"a digest is 32 bytes, got {len(raw)}")
    return PREFIX + raw.hex()


def digest_state_dict(state: Mapping[str, Any]) -> str:
    """Digest of a PyTorch state dict: SHA-256 of its safetensors bytes.

    Equal to :func:`digest_file` of the file written by :func:`save_state_dict`, so a
    model registered from disk and one held in memory agree.
    """
    return digest_bytes(state_dict_bytes(state))


def state_dict_bytes(state: Mapping[str, Any]) -> bytes:
    """Deterministic safetensors serialisation of a state dict (contiguous CPU tensors)."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return save(tensors)


def save_state_dict(state: Mapping[str, Any], path: str | os.PathLike[str]) -> str:
    """Write ``state`` as safetensors to ``path`` atomically and return its digest."""
    from mltrail._fs import atomic_write

    data = state_dict_bytes(state)
    atomic_write(Path(path), data)
    return digest_bytes(data)
