"""Training data as files: a safetensors file with an ``x`` (inputs) and ``y`` (labels).

Owns :func:`load_data` and :func:`save_data`. The digest of such a file is the data
commitment's ``digest`` in a proof manifest, so a dataset artefact registered from the
file and the proof agree. ``digits`` names the built-in reference training split.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mltrail.errors import InputError, NotFoundError
from mltrail.provenance.digest import save_state_dict

BUILTIN = "digits"


def load_data(spec: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from a data file, or the reference digits training split for ``digits``."""
    if str(spec) == BUILTIN:
        from mltrail.reference import load_digits_tensors

        d = load_digits_tensors()
        return d.x_train, d.y_train
    path = Path(spec)
    if not path.is_file():
        raise NotFoundError(f"no data file at {path} (or use '{BUILTIN}')")
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        tensors = load(path.read_bytes())
    except (SafetensorError, ValueError) as exc:
        raise InputError(f"{path} is not a safetensors data file") from exc
    if set(tensors) != {"x", "y"}:
        raise InputError(f"{path} must hold exactly the tensors 'x' and 'y'")
    x, y = tensors["x"], tensors["y"]
    if x.dim() < 2 or y.dim() != 1 or len(x) != len(y) or not x.is_floating_point() \
            or y.dtype != torch.int64:
        raise InputError(f"{path}: need float inputs x (N×...) and int64 labels y (N)")
    return x, y


def save_data(x: torch.Tensor, y: torch.Tensor, path: str | Path) -> str:
    """Write ``(x, y)`` as a data file atomically; returns its digest. A folder, or a
    path whose parent is missing or not a folder, is refused (exit 2)."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a folder; give the path of a new data file")
    if not p.parent.is_dir():
        raise InputError(f"cannot write {p}: {p.parent} is not a folder")
    try:
        return save_state_dict({"x": x, "y": y}, p)
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
