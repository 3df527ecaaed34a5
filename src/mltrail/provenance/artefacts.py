"""Registering paths with their per-file manifests, and reading that back.

Owns the shape of an artefact's off-chain metadata (a JSON blob in the content store
whose digest is on chain): ``name``, ``path`` (absolute, where it was registered),
``manifest`` (digest of the folder's per-file manifest blob) and optional ``activity``
(the step that made it and its signed statement). It never decides what is allowed:
the contract does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltrail.errors import InputError, NotFoundError, VerificationError
from mltrail.provenance.digest import canonical_json, digest_tree

if TYPE_CHECKING:
    from mltrail.ledger.client import Artefact, Ledger, Registered, TxResult
    from mltrail.ledger.reader import ArtefactView
    from mltrail.provenance.store import ContentStore

# bounds before allocation: metadata and manifests are read from a store others may fill
MAX_BLOB = 256 << 20


@dataclass(frozen=True)
class Hashed:
    """A path on disk with its digest and (for a folder) its per-file manifest."""

    path: Path
    digest: str
    manifest: dict[str, str] | None

    @classmethod
    def of(cls, path: str | Path) -> Hashed:
        p = Path(path)
        digest, manifest = digest_tree(p)
        return cls(p, digest, manifest)


def put_manifest(store: ContentStore, manifest: dict[str, str]) -> str:
    """Store a folder's manifest; return the blob's digest."""
    return store.put(canonical_json({"files": manifest}))


def metadata_for(hashed: Hashed, store: ContentStore, name: str | None = None,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The metadata registered with ``hashed`` (the manifest blob goes to the store)."""
    meta: dict[str, Any] = {"name": name or hashed.path.resolve().name,
                            "path": str(hashed.path.resolve())}
    if hashed.manifest is not None:
        meta["manifest"] = put_manifest(store, hashed.manifest)
        meta["files"] = len(hashed.manifest)
    meta.update(extra or {})
    return meta


def register_path(led: Ledger, path: str | Path | Hashed, kind: str,
                  parents: list[str] | None = None, name: str | None = None,
                  extra: dict[str, Any] | None = None) -> tuple[Registered, Hashed]:
    """Hash ``path`` and register it; a folder's per-file manifest is kept in the store."""
    hashed = path if isinstance(path, Hashed) else Hashed.of(path)
    meta = metadata_for(hashed, led.home.store, name, extra)
    uniq = list(dict.fromkeys(led.resolve(p) for p in parents or []))
    return led.register(kind, hashed.digest, uniq, meta), hashed


def lookup(led: Ledger, ref: str) -> tuple[str, str | None]:
    """Full id and name of the artefact ``ref`` names (an id, a unique prefix or a name),
    after syncing ``led``'s index."""
    from mltrail.ledger.reader import IndexReader

    led.sync()
    reader = IndexReader.open(led.home, led.settings, led.lifecycle, require_current=False)
    if reader is None:
        return str(led.resolve(ref)), None
    with reader:
        view = reader.artefact(ref)
        return view.id, view.name


def default_name(path: Path) -> str | None:
    """The file's name as the artefact's name, when it makes a usable one."""
    from mltrail.ledger.reader import looks_like_id

    n = path.resolve().name
    ok = n and n.isprintable() and n == n.strip() and len(n.encode()) <= 64
    return n if ok and not looks_like_id(n) else None


def register_artefact(led: Ledger, path: str | Path, kind: str, parents: list[str] | None = None,
                      name: str | None = None) -> tuple[Registered, Hashed, str | None]:
    """Check, hash and register ``path`` as an artefact of ``kind``; its name defaults to the
    file's. ``parents`` are ids, prefixes or names. Nothing stays in the store on a refusal.
    Returns (registration, the hashed path, the name used)."""
    from mltrail._fs import readable_tree

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise InputError(f"path does not exist: {path}")
    readable_tree(path, "path")
    art_name = name if name is not None else default_name(path)
    ids = [lookup(led, p)[0] for p in parents or []]
    with led.home.store.discard_on_failure():
        reg, hashed = register_path(led, path, kind, ids, art_name)
    return reg, hashed, art_name


@dataclass(frozen=True)
class Moved:
    """A transition taken: which artefact, from and to which state, citing what."""

    artefact_id: str
    name: str | None
    before: str
    after: str
    evidence_digest: str | None
    tx: TxResult


def transition_artefact(led: Ledger, ref: str, state: str,
                        evidence: str | Path | None = None) -> Moved:
    """Move the artefact ``ref`` names to ``state``, citing the file ``evidence`` (its digest
    goes on chain; the file enters the store only once the chain accepted the move)."""
    from mltrail._fs import regular_file
    from mltrail.provenance.digest import digest_file

    digest = None
    if evidence is not None:
        regular_file(Path(evidence), "evidence file")
        digest = digest_file(evidence)
    aid, name = lookup(led, ref)
    before = led.artefact(aid)
    tx = led.transition(before.id, state, digest)
    if evidence is not None:
        led.home.store.put_file(evidence)
    return Moved(before.id, name, before.state, state, digest, tx)


def _json_blob(store: ContentStore, digest: str, what: str) -> dict[str, Any]:
    data = store.get(digest)
    if len(data) > MAX_BLOB:
        raise InputError(f"{what} {digest} is larger than {MAX_BLOB} bytes")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise VerificationError(f"{what} {digest} is not JSON") from exc
    if not isinstance(doc, dict):
        raise VerificationError(f"{what} {digest} is not a JSON object")
    return doc


def metadata(store: ContentStore, art: Artefact | ArtefactView) -> dict[str, Any] | None:
    """An artefact's metadata, or None when its blob is not in this home's store."""
    if int(art.metadata_digest.removeprefix("sha256:"), 16) == 0:
        return {}
    try:
        return _json_blob(store, art.metadata_digest, "metadata")
    except NotFoundError:
        return None


def manifest(store: ContentStore, meta: dict[str, Any]) -> dict[str, str] | None:
    """The per-file manifest a metadata blob names, or None if it names none."""
    ref = meta.get("manifest")
    if not isinstance(ref, str):
        return None
    files = _json_blob(store, ref, "manifest").get("files")
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise VerificationError(f"manifest {ref} is malformed")
    return files
