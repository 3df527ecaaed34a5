"""Reference model cards beyond PyTorch: scikit-learn models saved with skops and ONNX
files give the model's own probabilities through ``load_model``/``predict``; files that
are not what their card says, skops files naming untrusted types, pickles and
tampered files are refused with one line (exit 2 on the command line)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mltrail.audit import models as M
from mltrail.audit.references import write_sklearn_reference
from mltrail.errors import InputError

CARD = {"name": "digits", "classes": 10, "input_shape": [64]}


class Opaque:
    """A type skops does not trust (anything could hide behind it)."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), 10), 0.1)


@pytest.fixture(scope="module")
def pipe():  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y, _, _ = M.digits()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(
        x.reshape(len(x), -1)[:600], y[:600])


@pytest.mark.parametrize("fmt,tol", [("skops", 1e-6), ("onnx", 1e-5)])
def test_sklearn_references_give_the_models_own_probabilities(pipe, tmp_path, fmt, tol) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"digits.{fmt}"
    digest = write_sklearn_reference(pipe, M.ModelCard(format=fmt, **CARD), path)
    net, card, got = M.load_model(path)
    assert got == digest == card.digest and card.format == fmt
    x = M.digits()[2][:40]          # 8x8 images: flattened for the 64-feature model
    want = pipe.predict_proba(x.reshape(40, -1))
    assert np.abs(M.predict(net, x) - want).max() < tol
    assert (M.predict(net, x).argmax(1) == pipe.predict(x.reshape(40, -1))).all()


def test_a_torch_model_exported_to_onnx_gives_the_same_probabilities(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import warnings

    import torch

    net = M.cheap_model()[0]
    buf = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter (no onnxscript here)
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.zeros(1, 1, 8, 8),), buf, dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})
    path = _write(tmp_path, "torch.onnx", buf.getvalue(), format="onnx", output="logits",
                  input_shape=[1, 8, 8])
    ref, card, _ = M.load_model(path)
    assert card.output_kind is None   # a name that is not a probability output: logits
    x = M.digits()[2][:32]
    assert np.abs(M.predict(ref, x) - M.predict(net, x)).max() < 1e-5


def test_onnx_zipmap_outputs_and_named_outputs(pipe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from skl2onnx import to_onnx

    raw = to_onnx(pipe, np.zeros((1, 64), np.float32)).SerializeToString()  # ZipMap on
    path = tmp_path / "zip.onnx"
    path.write_bytes(raw)
    (tmp_path / "zip.json").write_text(json.dumps({**CARD, "format": "onnx"}))
    x = M.digits()[2][:8]
    assert np.abs(M.predict(M.load_model(path)[0], x)
                  - pipe.predict_proba(x.reshape(8, -1))).max() < 1e-5
    (tmp_path / "zip.json").write_text(json.dumps({**CARD, "format": "onnx",
                                                   "output": "nope"}))
    with pytest.raises(InputError, match="has no output 'nope'"):
        M.load_model(path)


def _write(tmp_path: Path, name: str, data: bytes, **card: object) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    p.with_suffix(".json").write_text(json.dumps({**CARD, **card}))
    return p


def test_bad_reference_files_are_refused_with_one_line(pipe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pickle

    import skops.io as sio

    untrusted = _write(tmp_path, "opaque.skops", sio.dumps(Opaque()), format="skops")
    with pytest.raises(InputError, match="types skops does not trust: .*Opaque"):
        M.load_model(untrusted)
    pickled = _write(tmp_path, "pickled.skops", pickle.dumps(pipe), format="skops")
    with pytest.raises(InputError, match="is not a skops file"):
        M.load_model(pickled)
    junk = _write(tmp_path, "junk.onnx", b"\x08\x07not a graph", format="onnx")
    with pytest.raises(InputError, match="not a usable ONNX model"):
        M.load_model(junk)
    good = tmp_path / "good.skops"
    write_sklearn_reference(pipe, M.ModelCard(format="skops", **CARD), good)
    good.write_bytes(good.read_bytes() + b"\0")          # tampered after its card
    with pytest.raises(InputError, match="its card says"):
        M.load_model(good)
    for card, msg in (({"format": "skops", "output": "x"}, "ONNX model's output"),
                      ({"format": "safetensors", "arch": {"type": "mlp"},
                        "output_kind": "probabilities"}, "logits")):
        _write(tmp_path, "c.skops", b"", **card)
        with pytest.raises(InputError, match=msg):
            M.load_model(tmp_path / "c.skops")


def test_the_cli_refuses_an_untrusted_skops_reference_with_exit_2(supplier, tmp_path, cli) -> None:  # type: ignore[no-untyped-def]
    import skops.io as sio

    bad = _write(tmp_path, "opaque.skops", sio.dumps(Opaque()), format="skops",
                 input_shape=[1, 8, 8])
    r = cli("audit", "run", "--target", f"{supplier.url}/v2/models/digits-mlp", "--model",
            str(bad), "--max-queries", "16")
    assert r.code == 2 and "does not trust" in r.err and r.err.count("\n") == 1, r.err
