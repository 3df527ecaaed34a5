"""The data of a user loop: map-style datasets whose bytes a proof can pin.

Owns :class:`ArrayDataset` (named tensors or numpy arrays, with an optional named
transform of the inputs), :class:`FolderDataset` (a folder of files read by a named
``load`` function), the commitment of each (:func:`commit`), and how a verifier loads
the committed bytes back (:func:`load_tensors_file`, :func:`folder_digest`). A
``torch.utils.data.TensorDataset`` is accepted as it is. The digest covers exactly the
bytes the dataset reads: every tensor, or every file of the folder; which samples each
step consumed is in the proof's batch indices. Never runs anything but the functions
named by the dataset itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from mltrail.errors import InputError, NotFoundError
from mltrail.pol.loopspec import CodeRef, FolderData, TensorData, ref_of
from mltrail.provenance.digest import digest_state_dict, dir_manifest, manifest_digest


def _as_tensor(name: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().contiguous()
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    raise InputError(f"data {name!r} is a {type(value).__name__}, not a tensor or numpy array")


class ArrayDataset(Dataset[tuple[torch.Tensor, ...]]):
    """Named arrays of equal length (tensors or numpy arrays); item i is the i-th row of
    each, in the order given, the first passed through ``transform`` when there is one.

    ``transform`` is a top-level function of an importable module (or its
    ``"package.module:function"`` name): the verifier imports the same code to rebuild
    each batch."""

    def __init__(self, transform: Callable[[torch.Tensor], torch.Tensor] | str | None = None,
                 **arrays: Any) -> None:
        if not arrays:
            raise InputError("ArrayDataset needs at least one named array")
        self.tensors = {k: _as_tensor(k, v) for k, v in arrays.items()}
        lengths = {len(t) for t in self.tensors.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise InputError("the arrays of a dataset must have the same, non-zero length")
        self.transform_ref = transform
        self._fn: Callable[[torch.Tensor], torch.Tensor] | None = None
        if isinstance(transform, str):
            from mltrail.pol.loopreplay import import_ref

            self._fn = import_ref(ref_of(transform), [])
        elif transform is not None:
            self._fn = transform

    @classmethod
    def of(cls, tensors: Mapping[str, torch.Tensor],
           transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> ArrayDataset:
        """A dataset over ``tensors`` (in their order) with an already imported transform."""
        ds = cls(None, **tensors)
        ds._fn = transform
        return ds

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        items = [t[i] for t in self.tensors.values()]
        if self._fn is not None:
            items[0] = self._fn(items[0])
        return tuple(items)


class FolderDataset(Dataset[Any]):
    """Every regular file under ``root`` (sorted by relative path, ``.git*`` ignored);
    item i is ``load(path_i)``, ``load`` being named by import path like a transform."""

    def __init__(self, root: str | Path, load: Callable[[Path], Any] | str) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise NotFoundError(f"no data folder at {self.root}")
        self.files = folder_files(self.root)
        if not self.files:
            raise InputError(f"{self.root} holds no files")
        self.load_ref = load
        if isinstance(load, str):
            from mltrail.pol.loopreplay import import_ref

            self._load: Callable[[Path], Any] = import_ref(ref_of(load), [])
        else:
            self._load = load

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Any:
        return self._load(self.root / self.files[i])


def folder_files(root: Path) -> list[str]:
    """Relative POSIX paths of the regular files under ``root`` in the order of the
    folder digest (:func:`mltrail.provenance.digest.dir_manifest`, model-signing's)."""
    return list(dir_manifest(root))


def folder_digest(root: Path) -> tuple[str, int]:
    """The folder's digest (the content digest of a folder registered as an artefact)
    and its number of files."""
    man = dir_manifest(root)
    return manifest_digest(man), len(man)


def tensors_of(dataset: Any) -> dict[str, torch.Tensor] | None:
    """The named tensors behind a tensor-backed dataset (None for a folder)."""
    if isinstance(dataset, ArrayDataset):
        return dict(dataset.tensors)
    if isinstance(dataset, TensorDataset):
        names = ["x", "y"] if len(dataset.tensors) == 2 else \
            [f"t{i}" for i in range(len(dataset.tensors))]
        return {n: t.detach().cpu().contiguous() for n, t in zip(names, dataset.tensors,
                                                                   strict=True)}
    return None


def commit(dataset: Any, paths: list[str] | None = None, pin_transform: bool = True
           ) -> tuple[TensorData | FolderData, CodeRef | None]:
    """The data commitment of a dataset, and its transform's code reference (None unless
    ``pin_transform``: an exported proof carries the transform as a program)."""
    tensors = tensors_of(dataset)
    if tensors is not None:
        n = len(next(iter(tensors.values())))
        transform = None
        if isinstance(dataset, ArrayDataset) and dataset.transform_ref is not None and \
                pin_transform:
            transform = ref_of(dataset.transform_ref, paths=paths)
        return TensorData(digest=digest_state_dict(tensors), n=n, names=list(tensors),
                          shapes={k: list(v.shape) for k, v in tensors.items()},
                          dtypes={k: str(v.dtype) for k, v in tensors.items()}), transform
    if isinstance(dataset, FolderDataset):
        digest, n = folder_digest(dataset.root)
        return FolderData(digest=digest, n=n, load=ref_of(dataset.load_ref, paths=paths)), None
    raise InputError(f"the recorder needs a TensorDataset, mltrail ArrayDataset or "
                     f"FolderDataset, not {type(dataset).__name__} (its bytes must be pinned)")


def load_tensors_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The named tensors of a safetensors data file."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"no data file at {p}")
    try:
        return load(p.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise InputError(f"{p} is not a safetensors data file") from exc


def check_tensors(spec: TensorData, tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``tensors`` are not the committed data, or None."""
    if list(spec.names) != [n for n in spec.names if n in tensors] or set(tensors) != \
            set(spec.names):
        return f"the data holds {sorted(tensors)}, the proof commits to {spec.names}"
    got = digest_state_dict(dict(tensors))
    if got != spec.digest:
        return (f"the data {got[:19]}… is not the committed {spec.digest[:19]}…")
    return None
