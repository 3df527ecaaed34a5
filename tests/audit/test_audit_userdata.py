"""The user's own model and data: a TorchScript token classifier and a tabular MLP with
preprocessing, each with its card, served over v2 and audited with probes from the
user's own data; parts that need images are skipped with their reason, never silently."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mltrail.audit import models as M
from mltrail.audit import probes as P
from mltrail.audit.receipts import load_or_create_key
from mltrail.audit.runner import AuditConfig, run_audit
from mltrail.audit.service import create_app, serve_in_thread
from mltrail.errors import InputError
from mltrail.provenance.digest import digest_file

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")


class TokenNet(nn.Module):
    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.emb = nn.Embedding(50, 8)
        self.out = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.emb(x).mean(1))  # type: ignore[no-any-return]


def _torchscript(path: Path, seed: int) -> Path:
    torch.jit.script(TokenNet(seed).eval()).save(str(path))
    card = M.ModelCard(name="tokens", format="torchscript", classes=4, input_shape=[12],
                       input_dtype="int64", digest=digest_file(path))
    path.with_suffix(".json").write_text(card.model_dump_json())
    return path


@pytest.fixture(scope="module")
def token_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    d = tmp_path_factory.mktemp("tokens")
    data = d / "tokens.npz"
    rng = np.random.default_rng(0)
    np.savez(data, x=rng.integers(0, 50, (300, 12)), data_kind=np.array("tokens"))
    return _torchscript(d / "model.pt", 1), _torchscript(d / "other.pt", 2), data


def _serve(path: Path):  # type: ignore[no-untyped-def]
    net, card, digest = M.load_model(path)
    return serve_in_thread(create_app(net, card, digest, load_or_create_key(None)))


def test_torchscript_token_model_audited_with_the_users_sequences(token_models) -> None:  # type: ignore[no-untyped-def]
    model, other, data = token_models
    probes = P.from_data(data, seed=1)
    assert probes.meta["data_kind"] == "tokens" and probes.counts() == {"data": 300}
    with _serve(model) as good, _serve(other) as bad:
        ok = run_audit(AuditConfig(target=good.url + "/v2/models/tokens", probes=probes,
                                   model_path=str(model), max_queries=80, seed=1,
                                   robustness={"per_class": 1}))
        assert ok.verdict == "pass", ok.findings
        assert [k.model_dump() for k in ok.skipped] == [
            {"check": "robustness", "reason": P.needs_images("robustness", "tokens")}]
        assert any(f.check == "robustness" and "needs image data" in f.message
                   for f in ok.findings)
        sub = run_audit(AuditConfig(target=bad.url + "/v2/models/tokens", probes=probes,
                                    model_path=str(model), max_queries=80, seed=1))
        assert sub.verdict == "fail" and sub.failed("identity")


def test_tabular_rows_with_labels_and_preprocessing(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(5.0, 2.0, (400, 6)).astype(np.float32)
    y = (x[:, 0] > 5.0).astype(np.int64) + (x[:, 1] > 5.0).astype(np.int64)
    card = M.ModelCard(name="tab", arch={"type": "mlp", "in_features": 6, "hidden": [16],
                                         "classes": 3}, classes=3, input_shape=[6],
                       preprocess=M.Preprocess(mean=[5.0], std=[2.0]))
    from mltrail.reference import build_model

    net = M.fit(M.CardModel(build_model(card.arch or {}), card), torch.from_numpy(x),
                torch.from_numpy(y), steps=150)
    path = tmp_path / "tab.safetensors"
    M.save_model(net.inner, card, path)
    loaded, _, _ = M.load_model(path)
    assert np.allclose(M.predict(loaded, x), M.predict(net, x))
    np.savez(tmp_path / "rows.npz", x=x, y=y, data_kind=np.array("tabular"))
    probes = P.from_data(tmp_path / "rows.npz", seed=2)
    with _serve(path) as srv:
        rep = run_audit(AuditConfig(target=srv.url, probes=probes, model_path=str(path),
                                    max_queries=90, seed=2, robustness={}))
    assert rep.verdict == "pass", rep.findings
    assert rep.metrics.accuracy is not None and rep.metrics.accuracy > 0.6
    assert rep.skipped and "tabular" in rep.skipped[0].reason


def test_data_files_are_checked_and_fresh_probes_need_images(tmp_path, token_models) -> None:  # type: ignore[no-untyped-def]
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3)))
    with pytest.raises(InputError, match="declare its kind"):
        P.from_data(tmp_path / "bad.npz")
    np.savez(tmp_path / "tok.npz", x=np.full((4, 3), 0.5), data_kind=np.array("tokens"))
    with pytest.raises(InputError, match="integers"):
        P.from_data(tmp_path / "tok.npz")
    with _serve(token_models[0]) as srv, pytest.raises(InputError, match="8x8 digit images"):
        run_audit(AuditConfig(target=srv.url, model_path=str(token_models[0]), max_queries=8))


def test_a_card_whose_digest_differs_from_its_file_is_refused(tmp_path: Path) -> None:
    path = _torchscript(tmp_path / "m.pt", 1)
    card = M.load_card(path).model_copy(update={"digest": "sha256:" + "0" * 64})
    path.with_suffix(".json").write_text(card.model_dump_json())
    with pytest.raises(InputError, match="its card says"):
        M.load_model(path)
