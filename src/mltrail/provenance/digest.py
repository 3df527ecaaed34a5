"""The one way mltrail hashes things.

Digests are SHA-256, written ``sha256:<64 hex>`` for people and as 32 raw bytes on
chain. A folder's digest is the one OpenSSF model signing (``model_signing.hashing``) puts in
its statement's subject: SHA-256 over the per-file SHA-256 digests in path order
(``.git``, ``.gitattributes``, ``.github``, ``.gitignore`` at the top ignored, symbolic
links refused). Files are hashed in parallel. This module never touches the ledger.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
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
    """Streaming SHA-256 of one file (one reused buffer, no copies)."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return PREFIX + h.hexdigest()


# model-signing ignores these names at the top of a folder (and everything below them)
_GIT_PATHS = frozenset({".git", ".gitattributes", ".github", ".gitignore"})


def _dir_files(root: Path) -> list[tuple[str, Path]]:
    """(POSIX relative path, path) of every regular file, in model-signing's order."""
    out: list[tuple[PurePosixPath, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        top = here == root
        for name in list(dirnames):
            if (here / name).is_symlink():
                raise InputError(f"symbolic link in a registered folder: {here / name}")
            if top and name in _GIT_PATHS:
                dirnames.remove(name)
        for name in filenames:
            p = here / name
            if p.is_symlink():
                raise InputError(f"symbolic link in a registered folder: {p}")
            if top and name in _GIT_PATHS:
                continue
            if p.is_file():
                out.append((PurePosixPath(p.relative_to(root).as_posix()), p))
    out.sort(key=lambda e: e[0])  # PurePosixPath order: component by component
    return [(str(rel), p) for rel, p in out]


def _workers() -> int:
    return max(1, min(32, os.cpu_count() or 1))


def _counted(digests: Any, advance: Callable[[int], None] | None) -> list[str]:
    out = []
    for d in digests:
        out.append(d)
        if advance is not None:
            advance(1)
    return out


def dir_manifest(root: str | os.PathLike[str],
                 advance: Callable[[int], None] | None = None) -> dict[str, str]:
    """Per-file digests of a directory, keyed by POSIX relative path, in model-signing's
    order. Files are hashed in parallel (hashlib releases the GIL); ``advance(1)`` per
    file hashed."""
    files = _dir_files(Path(root))
    if len(files) <= 1:
        return {rel: d for (rel, _), d in zip(
            files, _counted((digest_file(p) for _, p in files), advance), strict=True)}
    from concurrent.futures import ThreadPoolExecutor  # only for a folder of files

    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        digests = _counted(pool.map(digest_file, [p for _, p in files]), advance)
    return {rel: d for (rel, _), d in zip(files, digests, strict=True)}


def manifest_digest(manifest: Mapping[str, str]) -> str:
    """A folder's digest from its manifest: SHA-256 over the raw per-file digests in
    manifest order, the subject digest OpenSSF model signing computes."""
    h = hashlib.sha256()
    for d in manifest.values():
        h.update(to_bytes32(d))
    return PREFIX + h.hexdigest()


def digest_tree(path: str | os.PathLike[str], advance: Callable[[int], None] | None = None,
                ) -> tuple[str, dict[str, str] | None]:
    """``(digest, manifest)`` of a path: a folder's per-file manifest, None for a file;
    ``advance(1)`` per file hashed."""
    p = Path(path)
    if p.is_symlink() and p.is_dir():
        raise InputError(f"refusing a symbolic link to a folder: {p}")
    if not p.exists():
        raise NotFoundError(f"path does not exist: {p}")
    try:
        if p.is_dir():
            manifest = dir_manifest(p, advance)
            return manifest_digest(manifest), manifest
        if not p.is_file():
            raise InputError(f"not a regular file or folder: {p}")
        return _counted([digest_file(p)], advance)[0], None
    except OSError as exc:
        raise InputError(f"cannot read {exc.filename or p}: {exc.strerror or exc}") from exc


def digest_path(path: str | os.PathLike[str]) -> str:
    """Digest of a file (its SHA-256), or of a folder (see :func:`manifest_digest`)."""
    return digest_tree(path)[0]


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
