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
import tarfile
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mltrail._fs import atomic_write
from mltrail.errors import InputError, NotFoundError, VerificationError
from mltrail.pol.replay import TrainingSpec
from mltrail.provenance.anchor import merkle_root
from mltrail.provenance.digest import digest_bytes, digest_file, digest_json, digest_state_dict

FORMAT: Literal["mltrail-pol/1"] = "mltrail-pol/1"
MANIFEST = "manifest.json"
GENESIS = "sha256:" + "0" * 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataCommitment(_Strict):
    """Digests of the exact training bytes: inputs, labels and both together."""

    digest: str  # digest_state_dict({"x": x, "y": y}) == digest of the data file
    inputs: str  # digest_state_dict({"x": x})
    labels: str  # digest_state_dict({"y": y})
    n: int
    shape: list[int]
    dtype: str


class InitCommitment(_Strict):
    scheme: str
    seed: int | None = None  # None: the verifier runs a statistical test instead


class Header(_Strict):
    """Everything fixed before training starts; its digest opens the hash chain."""

    format: Literal["mltrail-pol/1"] = FORMAT
    training: TrainingSpec
    k: int = Field(ge=1)
    data: DataCommitment
    init: InitCommitment
    torch: str
    device: str
    prover: str | None = None
    anchor_artefact: str | None = None
    note: str | None = None


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


def data_commitment(x: torch.Tensor, y: torch.Tensor) -> DataCommitment:
    x, y = x.detach().cpu().contiguous(), y.detach().cpu().contiguous()
    return DataCommitment(digest=digest_state_dict({"x": x, "y": y}),
                          inputs=digest_state_dict({"x": x}), labels=digest_state_dict({"y": y}),
                          n=int(y.shape[0]), shape=list(x.shape), dtype=str(x.dtype))


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
    try:
        return Manifest.model_validate_json(mpath.read_bytes())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InputError(f"malformed proof manifest {mpath}: {where}: {err['msg']}") from exc


def load_tensors(folder: Path, rel: str, expected: str) -> dict[str, torch.Tensor]:
    """Load a safetensors file of the bundle after checking its digest."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = folder / rel
    if not path.is_file() or ".." in Path(rel).parts:
        raise VerificationError(f"bundle file missing: {rel}")
    raw = path.read_bytes()
    if digest_bytes(raw) != expected:
        raise VerificationError(f"bundle file {rel} does not match its digest in the manifest")
    try:
        return load(raw)
    except (SafetensorError, ValueError) as exc:
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


def pack(folder: str | Path) -> bytes:
    """Deterministic tar of a bundle folder (sorted names, zeroed times and owners)."""
    base = Path(folder)
    read_manifest(base)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in sorted(q for q in base.rglob("*") if q.is_file()):
            rel = p.relative_to(base).as_posix()
            info = tarfile.TarInfo(rel)
            data = p.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def unpack(data: bytes, dest: str | Path) -> Path:
    """Extract a packed bundle into ``dest`` (plain files only, no absolute paths)."""
    out = Path(dest)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            for m in tar.getmembers():
                if not m.isfile() or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise InputError(f"refusing bundle member {m.name!r}")
                fh = tar.extractfile(m)
                assert fh is not None
                atomic_write(out / m.name, fh.read())
    except tarfile.TarError as exc:
        raise InputError(f"not a packed proof bundle: {exc}") from exc
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
