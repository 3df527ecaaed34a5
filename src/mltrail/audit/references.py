"""Reference models from outside PyTorch: ONNX files (onnxruntime) and scikit-learn
models saved with skops.

Owns :func:`load_foreign` (a card's ``onnx`` or ``skops`` model file as a
:class:`ForeignModel`) and :func:`write_sklearn_reference` (a fitted scikit-learn
estimator written as a skops file or an ONNX file, with its card). A
:class:`ForeignModel` is an ``nn.Module`` whose ``forward`` returns log-probabilities
(or the ONNX graph's logits), so every consumer of a reference (``models.predict``,
the audit's tests, ``serve-model``) sees the model's own probabilities after its
softmax (renormalised to sum 1 in float64: float32 probabilities move by ~1e-7, far
inside the audit's 1e-4 tolerance), with no second code path.

Safety: the file's bytes are read once; the digest and the loaded model come from those
same bytes. An ONNX file is parsed by onnxruntime (no code runs; a graph whose weights
live in external files is refused, since the digest would not cover them). A skops file
is loaded only if every type it names is one skops trusts by default (scikit-learn,
NumPy and SciPy types); anything else is refused with the types named. Plain pickles and
joblib files are never loaded. This module never serves or audits anything.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from mltrail.errors import InputError

if TYPE_CHECKING:
    from mltrail.audit.models import ModelCard

FOREIGN = ("onnx", "skops")
SUFFIX = {"onnx": ".onnx", "skops": ".skops"}
# output names that hold class probabilities (skl2onnx, MLServer, common exports)
PROB_OUTPUTS = ("probabilities", "output_probability", "probs", "probas", "predict_proba",
                "scores", "softmax")
TINY = 1e-300  # log(0) guard: a zero probability stays (numerically) zero after softmax


class ForeignModel(nn.Module):
    """A non-PyTorch classifier behind the ``nn.Module`` interface of references."""

    def __init__(self, kind: str, run: Any, logits: bool) -> None:
        super().__init__()
        self.kind = kind
        self._run = run          # float32 batch (N x ...) -> float64 N x classes
        self.logits = logits     # the output is logits (softmax follows) or probabilities

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = np.asarray(self._run(x.detach().cpu().numpy().astype(np.float32)),
                         dtype=np.float64)
        if out.ndim != 2:
            raise InputError(f"the {self.kind} reference answered shape {list(out.shape)}, "
                             "not [batch, classes]")
        return torch.from_numpy(out if self.logits else np.log(np.maximum(out, TINY)))


def _onnx(raw: bytes, card: ModelCard, where: Path) -> ForeignModel:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(raw, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors on a bad file
        raise InputError(f"model file {where} is not a usable ONNX model: "
                         f"{str(exc).splitlines()[0][:200]}") from exc
    inputs = sess.get_inputs()
    if len(inputs) != 1:
        raise InputError(f"model file {where} takes {len(inputs)} inputs; mltrail audits "
                         "single-input classifiers")
    inp = inputs[0]
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32}.get(inp.type)
    if dtype is None:
        raise InputError(f"model file {where}: input type {inp.type} is not supported")
    outs = {o.name: o for o in sess.get_outputs()}
    name = card.output
    if name is None:
        floats = [o.name for o in outs.values() if "float" in o.type or "double" in o.type
                  or o.type.startswith("seq(map")]
        named = [n for n in floats if n.lower() in PROB_OUTPUTS]
        if not floats:
            raise InputError(f"model file {where} has no float output; name one with the "
                             "card's 'output'")
        name = (named or floats)[0]
    elif name not in outs:
        raise InputError(f"model file {where} has no output {name!r} (it has "
                         f"{', '.join(outs)})")
    logits = card.output_kind == "logits" if card.output_kind is not None \
        else name.lower() not in PROB_OUTPUTS
    shape = (-1,) if len(inp.shape) == 2 else tuple(card.input_shape)

    def run(x: np.ndarray) -> np.ndarray:
        arr = x.reshape(len(x), *shape)
        if dtype in (np.int64, np.int32):
            arr = np.round(arr)
        try:
            got = sess.run([name], {inp.name: arr.astype(dtype)})[0]
        except Exception as exc:  # onnxruntime's own error types
            raise InputError(f"the ONNX reference {where} cannot run on inputs of shape "
                             f"{list(arr.shape)}: {str(exc).splitlines()[0][:200]}") from exc
        if isinstance(got, list):  # skl2onnx's ZipMap: one {class: probability} per row
            return np.array([[row[k] for k in sorted(row)] for row in got], dtype=np.float64)
        return np.asarray(got, dtype=np.float64)

    return ForeignModel("onnx", run, logits)


def _skops(raw: bytes, card: ModelCard, where: Path) -> ForeignModel:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=raw)
    except Exception as exc:  # skops raises zipfile/JSON/key errors on a bad file
        raise InputError(f"model file {where} is not a skops file: "
                         f"{str(exc).splitlines()[0][:200]}") from exc
    if untrusted:
        raise InputError(f"model file {where} names types skops does not trust: "
                         f"{', '.join(untrusted)[:300]}; convert the model to ONNX "
                         "(skl2onnx) or load it yourself and re-save what you trust")
    try:
        est = sio.load(io.BytesIO(raw))
    except Exception as exc:
        raise InputError(f"model file {where} does not load: "
                         f"{str(exc).splitlines()[0][:200]}") from exc
    if card.output_kind == "logits":
        raise InputError("a skops reference answers predict_proba: output_kind must be "
                         "'probabilities'")
    if not hasattr(est, "predict_proba"):
        raise InputError(f"the model in {where} ({type(est).__name__}) has no "
                         "predict_proba")

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(est.predict_proba(x.reshape(len(x), -1)), dtype=np.float64)

    return ForeignModel("skops", run, logits=False)


def load_foreign(raw: bytes, card: ModelCard, where: Path) -> ForeignModel:
    """The reference in ``raw`` (the model file's bytes) as ``card.format`` says."""
    if card.format == "onnx":
        return _onnx(raw, card, where)
    return _skops(raw, card, where)


def write_sklearn_reference(estimator: Any, card: ModelCard, path: str | Path) -> str:
    """Write a fitted scikit-learn classifier as ``card.format`` (``skops``, or ``onnx``
    through skl2onnx with plain probability outputs) at ``path``, its card beside it;
    return the model digest."""
    from mltrail._fs import atomic_write
    from mltrail.audit.models import card_path
    from mltrail.provenance.digest import digest_file

    p = Path(path)
    if card.format == "skops":
        import skops.io as sio

        raw = sio.dumps(estimator)
    elif card.format == "onnx":
        from skl2onnx import to_onnx

        sample = np.zeros((1, int(np.prod(card.input_shape))), dtype=np.float32)
        raw = to_onnx(estimator, sample, options={"zipmap": False}).SerializeToString()
    else:
        raise InputError(f"a scikit-learn model is written as skops or onnx, not {card.format}")
    atomic_write(p, raw)
    digest = digest_file(p)
    atomic_write(card_path(p), (card.model_copy(update={"digest": digest})
                                .model_dump_json(indent=2) + "\n").encode())
    return digest
