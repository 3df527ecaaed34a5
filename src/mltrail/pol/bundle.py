"""The proof bundle: manifest model, hash chain, epoch Merkle roots, files on disk.

Owns the on-disk format described in ``docs/pol-format.md``: a folder with
``manifest.json``, ``checkpoints/*.safetensors`` and ``indices/*.safetensors``, and a
deterministic tar form of it for the content store. It validates what it reads
(pydantic, ``extra="forbid"``) and writes atomically. It judges nothing about training
(that is :mod:`mltrail.pol.verifier`) and never touches the ledger.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from mltrail._fs import atomic_write
from mltrail.errors import InputError, NotFoundError, VerificationError
from mltrail.pol.environment import Environment
from mltrail.pol.environment import current as current_environment
from mltrail.pol.limits import MAX_MANIFEST_BYTES, MAX_TAR_MEMBERS, safetensors_header
from mltrail.pol.loopspec import LoopData, LoopSpec
from mltrail.provenance.anchor import merkle_root
from mltrail.provenance.digest import digest_bytes, digest_file, digest_json

FORMAT: Literal["mltrail-pol/1"] = "mltrail-pol/1"
MANIFEST = "manifest.json"
GENESIS = "sha256:" + "0" * 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InitOrigin(_Strict):
    """Where a ledger-derived init seed comes from: the prover's start anchor (made before
    step 0) on ``artefact_id``; the seed is derived from the hash of its ``block``."""

    artefact_id: str
    block: int = Field(ge=0)
    tx_hash: str
    root: str  # hex of the anchored 32-byte root (binds data, prover, arch, scheme)


class InitCommitment(_Strict):
    scheme: str
    seed: int | None = None  # None (scheme "prover"): the initial weights are the prover's
    origin: InitOrigin | None = None  # None: a seed the prover chose


class Header(_Strict):
    """Everything fixed before training starts; its digest opens the hash chain."""

    format: Literal["mltrail-pol/1"] = FORMAT
    training: LoopSpec
    k: int = Field(ge=1)
    data: LoopData
    init: InitCommitment
    torch: str
    device: str
    prover: str | None = None
    anchor_artefact: str | None = None
    note: str | None = None
    env: Environment | None = None  # None: a bundle written before environments were declared

    @model_validator(mode="before")
    @classmethod
    def _declare_environment(cls, data: Any, info: ValidationInfo) -> Any:
        """A header built by a recorder declares the running process's environment; one
        read back from a manifest (``context={"stored": True}``) keeps what it says."""
        if isinstance(data, dict) and "env" not in data and \
                not (info.context or {}).get("stored"):
            data = {**data, "env": current_environment(str(data.get("device", "cpu")))}
        return data

    @model_serializer(mode="wrap")
    def _omit_missing_environment(self, handler: SerializerFunctionWrapHandler
                                  ) -> dict[str, Any]:
        """An old header (no ``env``) dumps as it was written, so its digest stays."""
        out: dict[str, Any] = handler(self)
        if out.get("env", 0) is None:
            del out["env"]
        return out


class Record(_Strict):
    """One link of the chain: a checkpoint, or the batch indices of an epoch."""

    type: Literal["checkpoint", "epoch"]
    seq: int = Field(ge=0)
    epoch: int = Field(ge=0)
    step: int = Field(ge=0)  # checkpoint: steps done; epoch: first step after the epoch
    files: dict[str, str]  # role ("model", "optim", "indices") -> relative path
    digests: dict[str, str]  # role -> sha256 of the file bytes
    prev: str
    link: str = ""

    def body(self) -> dict[str, Any]:
        return self.model_dump(exclude={"link"})


class Anchor(_Strict):
    epoch: int
    root: str  # hex of the 32-byte RFC 6962 root
    count: int
    artefact_id: str | None = None
    tx_hash: str | None = None
    block: int | None = None
    timestamp: int | None = None
    actor: str | None = None


class Manifest(_Strict):
    header: Header
    header_digest: str
    records: list[Record] = Field(default_factory=list)
    anchors: list[Anchor] = Field(default_factory=list)
    final_model: str | None = None
    complete: bool = False

    @property
    def chain_head(self) -> str:
        return self.records[-1].link if self.records else self.header_digest

    def checkpoints(self) -> list[Record]:
        return [r for r in self.records if r.type == "checkpoint"]

    def epoch_records(self) -> list[Record]:
        return [r for r in self.records if r.type == "epoch"]


def link_of(record: Record) -> str:
    """The chain link of ``record``: digest of its body (which names ``prev``)."""
    return digest_json(record.body())


def epoch_groups(records: list[Record]) -> list[list[Record]]:
    """Records split at each epoch record (inclusive): the leaves of each epoch's root."""
    groups: list[list[Record]] = []
    cur: list[Record] = []
    for r in records:
        cur.append(r)
        if r.type == "epoch":
            groups.append(cur)
            cur = []
    return groups


def epoch_root(group: list[Record]) -> bytes:
    """RFC 6962 Merkle root over an epoch's records (canonical JSON, links included)."""
    return merkle_root([r.model_dump() for r in group])


# --------------------------------------------------------------------------- I/O


def write_manifest(folder: Path, manifest: Manifest, durable: bool = True) -> None:
    """Write ``manifest.json`` atomically (fsynced unless ``durable`` is False, which the
    recorder uses for the in-progress manifest it rewrites every epoch)."""
    data = (json.dumps(manifest.model_dump(), indent=1, sort_keys=True) + "\n").encode()
    atomic_write(folder / MANIFEST, data, durable=durable)


def read_manifest(folder: str | Path) -> Manifest:
    """Load and validate ``manifest.json`` of a bundle folder (or a ``.tar`` bundle)."""
    path = Path(folder)
    if not path.exists():
        raise NotFoundError(f"no proof bundle at {path}")
    if path.is_file():
        raise InputError(f"{path} is a file; unpack it with 'mltrail pol unpack' or pass a folder")
    mpath = path / MANIFEST
    if not mpath.exists():
        raise InputError(f"{path} is not a proof bundle (no {MANIFEST})")
    if mpath.is_symlink() or not mpath.is_file():
        raise InputError(f"{mpath} is not a regular file")
    if mpath.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(f"{mpath} is larger than {MAX_MANIFEST_BYTES >> 20} MiB")
    try:
        doc = json.loads(mpath.read_bytes())
        refuse_reference_format(doc, mpath)
        return Manifest.model_validate(doc, context={"stored": True})
    except (ValueError, RecursionError) as exc:
        if not isinstance(exc, ValidationError):
            raise InputError(f"malformed proof manifest {mpath}: not JSON") from exc
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        text = f"{where}: {err['msg']}".encode("unicode_escape").decode()[:300]
        raise InputError(f"malformed proof manifest {mpath}: {text}") from exc


REFERENCE_FORMAT = ("{path}: a proof in the reference-engine format (a TrainingSpec "
                    "header, written by mltrail 0.1.0 before issue 18); this mltrail verifies "
                    "loop-spec proofs only: re-record it with 'mltrail pol train' (or "
                    "mltrail.record_loop)")


def refuse_reference_format(doc: Any, path: Path) -> None:
    """An old reference-task manifest (its training spec has no ``"kind": "loop"`` and
    names an ``arch``) is the caller's input error, one line, never a verdict."""
    header = doc.get("header") if isinstance(doc, dict) else None
    training = header.get("training") if isinstance(header, dict) else None
    if isinstance(training, dict) and training.get("kind") != "loop" and "arch" in training:
        raise InputError(REFERENCE_FORMAT.format(path=path))


def bundle_path(folder: Path, rel: str) -> Path:
    """``folder / rel`` if it names a regular file inside the bundle (no absolute path, no
    ``..``, no symbolic link on the way); otherwise :class:`VerificationError`."""
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or ".." in parts or "\\" in rel or "\0" in rel:
        raise VerificationError(f"bundle file {rel!r} is outside the bundle")
    cur = folder
    for part in parts:
        cur = cur / part
        if cur.is_symlink():
            raise VerificationError(f"bundle file {rel!r} is a symbolic link")
    if not cur.is_file():
        raise VerificationError(f"bundle file missing: {rel}")
    root = os.path.realpath(folder)
    if not os.path.realpath(cur).startswith(root.rstrip(os.sep) + os.sep):
        raise VerificationError(f"bundle file {rel!r} is outside the bundle")
    return cur


def load_tensors(folder: Path, rel: str, expected: str,
                 shapes: dict[str, tuple[int, ...]] | None = None, max_bytes: int | None = None
                 ) -> dict[str, torch.Tensor]:
    """Load a safetensors file of the bundle after checking its place, size and digest.

    With ``shapes``, the file's header must name exactly these tensors with these shapes
    (checked before any tensor is loaded); ``max_bytes`` bounds the file's size.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = bundle_path(folder, rel)
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise VerificationError(f"bundle file {rel} is larger than its tensors can be")
    raw = path.read_bytes()
    if digest_bytes(raw) != expected:
        raise VerificationError(f"bundle file {rel} does not match its digest in the manifest")
    try:
        head = safetensors_header(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"bundle file {rel} is not valid safetensors ({exc})") from exc
    if shapes is not None:
        got = {n: tuple(s) for n, (_, s) in head.items()}
        if got != shapes:
            missing = sorted(set(shapes) - set(got))
            extra = sorted(set(got) - set(shapes))
            wrong = sorted(n for n in set(got) & set(shapes) if got[n] != shapes[n])
            what = "; ".join(f"{label} {', '.join(names[:3])}" for label, names in
                             (("missing", missing), ("unexpected", extra),
                              ("wrong shape", wrong)) if names)
            raise VerificationError(f"bundle file {rel} does not fit the architecture: {what}")
    try:
        return load(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise VerificationError(f"bundle file {rel} is not valid safetensors") from exc


def save_tensors(folder: Path, rel: str, tensors: dict[str, torch.Tensor]) -> str:
    """Write a safetensors file of the bundle; returns the digest of its bytes.

    Written to a temporary name and renamed (never half-written) but not fsynced, which
    would dominate the recording overhead; the manifest that names the file is fsynced,
    and a file lost in a crash shows up as a digest mismatch.
    """
    from mltrail.provenance.digest import state_dict_bytes

    data = state_dict_bytes(tensors)
    atomic_write(folder / rel, data, durable=False)
    return digest_bytes(data)


def _bundle_files(base: Path) -> list[Path]:
    """Every regular file under ``base``, never following a link (a link is refused)."""
    out: list[Path] = []
    for root, dirs, files in os.walk(base, followlinks=False):
        for name in dirs + files:
            p = Path(root) / name
            if p.is_symlink():
                raise InputError(f"refusing to pack {p}: it is a symbolic link")
            if name in files and not p.is_file():
                raise InputError(f"refusing to pack {p}: not a regular file")
        out += [Path(root) / f for f in files]
    return sorted(out)


def pack(folder: str | Path) -> bytes:
    """Deterministic tar of a bundle folder (sorted names, zeroed times and owners).

    Links are never followed: a bundle holding one is refused."""
    base = Path(folder)
    read_manifest(base)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in _bundle_files(base):
            rel = p.relative_to(base).as_posix()
            info = tarfile.TarInfo(rel)
            data = p.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack(data: bytes, dest: str | Path) -> Path:
    """Extract a packed bundle into ``dest``: plain files only, no absolute or ``..``
    paths, no sparse members, at most ``MAX_TAR_MEMBERS`` members whose sizes together
    fit in the archive (checked before each member is read)."""
    out = Path(dest)
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for n, m in enumerate(tar):
                name = m.name
                if n >= MAX_TAR_MEMBERS:
                    raise InputError(f"more than {MAX_TAR_MEMBERS} members in the bundle")
                if not m.isreg() or m.issparse() or name.startswith("/") or ".." in \
                        Path(name).parts or "\0" in name or "\\" in name or name in seen \
                        or not Path(name).parts:
                    raise InputError(f"refusing bundle member {name!r}")
                total += m.size
                if m.size < 0 or total > len(data):
                    raise InputError(f"bundle member {name!r} declares more bytes than the "
                                     "archive holds")
                seen.add(name)
                fh = tar.extractfile(m)
                if fh is None:
                    raise InputError(f"refusing bundle member {name!r}")
                body = fh.read(m.size + 1)
                if len(body) != m.size:
                    raise InputError(f"bundle member {name!r} is truncated")
                target = out / name
                if any(p.is_symlink() or (p.exists() and not p.is_dir())
                       for p in list(target.parents)[:len(Path(name).parts) - 1]):
                    raise InputError(f"refusing bundle member {name!r}")
                atomic_write(target, body)
    except (tarfile.TarError, EOFError, ValueError, UnicodeError) as exc:
        raise InputError(f"not a packed proof bundle: {str(exc).splitlines()[0]}") from exc
    except (IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        raise InputError(f"bundle members clash: {exc}") from exc
    read_manifest(out)
    return out


def bundle_digest(folder: str | Path) -> str:
    """Digest of the packed bundle (what goes into the content store)."""
    return digest_bytes(pack(folder))


def model_file_digest(path: str | Path) -> str:
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"no such model file: {p}")
    return digest_file(p)


def genesis_ok(manifest: Manifest) -> bool:
    return manifest.header_digest == digest_json(manifest.header.model_dump())
