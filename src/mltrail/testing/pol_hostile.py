"""Hostile proof bundles: files that try to make the verifier read, allocate or loop
where it must not (issue 7, item 4).

Owns builders that start from an honest bundle and re-chain every digest, so the only
thing wrong is the hostile part: a checkpoint path outside the bundle, a symbolic link
inside it, astronomically many epochs, a 50 M-unit architecture, a checkpoint missing a
tensor, and tars with a sparse member declaring 30 GB or a member larger than the
archive. Nothing here is used by the prover or the verifier.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from mltrail.pol.bundle import (
    Manifest,
    epoch_groups,
    epoch_root,
    link_of,
    read_manifest,
    save_tensors,
    write_manifest,
)
from mltrail.provenance.digest import digest_bytes, digest_json
from mltrail.testing.pol_forgeries import load_states


def rewrite(out: str | Path, honest: str | Path, edit: Callable[[Manifest, Path], None]
            ) -> Manifest:
    """Copy ``honest`` to ``out``, let ``edit`` change the manifest (and files), then
    re-hash the header, re-chain every record and recompute the epoch roots."""
    folder = Path(out)
    shutil.copytree(honest, folder, symlinks=True)
    man = read_manifest(folder)
    edit(man, folder)
    man.header_digest = digest_json(man.header.model_dump())
    prev = man.header_digest
    for i, rec in enumerate(man.records):
        rec.seq, rec.prev = i, prev
        rec.link = link_of(rec)
        prev = rec.link
    for a, group in zip(man.anchors, epoch_groups(man.records), strict=False):
        a.root, a.count = epoch_root(group).hex(), len(group)
    cks = man.checkpoints()
    man.final_model = cks[-1].digests.get("model") if cks else None
    write_manifest(folder, man)
    return man


def outside_path(out: str | Path, honest: str | Path, target: str | Path) -> Manifest:
    """Checkpoint 1's model file named by a path that leaves the bundle."""
    def edit(man: Manifest, folder: Path) -> None:
        rel = os.path.relpath(Path(target).resolve(), folder.resolve())
        rec = man.checkpoints()[1]
        rec.files["model"] = rel
        rec.digests["model"] = digest_bytes(Path(target).read_bytes())
    return rewrite(out, honest, edit)


def symlinked_checkpoint(out: str | Path, honest: str | Path, target: str | Path) -> Manifest:
    """Checkpoint 1's model file replaced by a symbolic link to ``target``."""
    def edit(man: Manifest, folder: Path) -> None:
        rec = man.checkpoints()[1]
        path = folder / rec.files["model"]
        path.unlink()
        path.symlink_to(Path(target).resolve())
        rec.digests["model"] = digest_bytes(Path(target).read_bytes())
    return rewrite(out, honest, edit)


def huge_epochs(out: str | Path, honest: str | Path, epochs: int = 10 ** 15) -> Manifest:
    def edit(man: Manifest, folder: Path) -> None:
        man.header.training.epochs = epochs
    return rewrite(out, honest, edit)


def huge_tensor(out: str | Path, honest: str | Path, rows: int = 50_000_000) -> Manifest:
    """Checkpoint 1's model file: a few bytes whose safetensors header declares one of
    the model's tensors with ``rows`` × 1000 float32 values (200 GB for the default)."""
    import json
    import struct

    def edit(man: Manifest, folder: Path) -> None:
        rec = man.checkpoints()[1]
        name = sorted(load_states(honest)[1][1][0])[0]
        head = json.dumps({name: {"dtype": "F32", "shape": [rows, 1000],
                                  "data_offsets": [0, rows * 4000]}}).encode()
        raw = struct.pack("<Q", len(head)) + head + b"\0" * 64
        (folder / rec.files["model"]).write_bytes(raw)
        rec.digests["model"] = digest_bytes(raw)
    return rewrite(out, honest, edit)


def missing_tensor(out: str | Path, honest: str | Path) -> Manifest:
    """Checkpoint 1's model file lacks one tensor (its digest re-computed)."""
    _, states = load_states(honest)

    def edit(man: Manifest, folder: Path) -> None:
        rec = man.checkpoints()[1]
        model = dict(states[1][0])
        model.pop(sorted(model)[0])
        rec.digests["model"] = save_tensors(folder, rec.files["model"], model)
    return rewrite(out, honest, edit)


def sparse_tar(declared: int = 30 << 30) -> bytes:
    """A tar whose one member is a GNU sparse file (PAX 0.1) declaring ``declared`` bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("manifest.json")
        body = b"{}" + b"\0" * 8
        info.size = len(body)
        info.pax_headers = {"GNU.sparse.size": str(declared), "GNU.sparse.map": f"0,{len(body)}",
                            "GNU.sparse.name": "manifest.json"}
        tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def oversized_member_tar(declared: int = 30 << 30) -> bytes:
    """A tar whose member header declares ``declared`` bytes that the archive lacks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("checkpoints/big.safetensors")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
    raw = bytearray(buf.getvalue())
    # rewrite the size in the member's PAX header would be re-validated; patch the ustar
    # size field of the (last) member header instead, as a hostile writer would
    off = raw.rfind(b"checkpoints/big.safetensors")
    field = f"{declared:011o}".encode() + b"\0"
    if len(field) > 12:
        field = b"\x80" + declared.to_bytes(11, "big")
    raw[off + 124:off + 136] = field
    chk = sum(raw[off:off + 148]) + 8 * 32 + sum(raw[off + 156:off + 512])
    raw[off + 148:off + 156] = f"{chk:06o}".encode() + b"\0 "
    return bytes(raw)


def many_members_tar(count: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"f{i}")
            tar.addfile(info, io.BytesIO(b""))
    return buf.getvalue()
