"""The recorder and the bundle format: what is committed, chained, anchored and written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from mltrail.errors import InputError, NotFoundError
from mltrail.pol import bundle as B
from mltrail.pol.checks import expected_layout
from mltrail.pol.recorder import ProofRecorder
from mltrail.pol.verifier import verify_bundle
from mltrail.provenance.anchor import merkle_root
from mltrail.provenance.digest import digest_file, digest_json, digest_state_dict
from mltrail.reference import TrainConfig, build_model, init_weights, train_seeded


def test_manifest_commits_everything_the_replay_needs(honest: Path, digits) -> None:
    man = B.read_manifest(honest)
    h = man.header
    assert h.training.optimizer == {"name": "sgd", "lr": 0.05, "momentum": 0.9,
                                    "weight_decay": 0.0, "nesterov": False}
    assert h.training.arch == {"type": "cnn"} and h.k == 10 and h.init.seed == 1
    assert h.data.digest == digest_state_dict({"x": digits[0], "y": digits[1]})
    assert h.data.n == len(digits[1]) and h.torch == torch.__version__
    assert man.header_digest == digest_json(h.model_dump())
    assert [(r.type, r.step, r.epoch) for r in man.records] == expected_layout(h.training, 10)
    for prev, rec in zip([man.header_digest] + [r.link for r in man.records], man.records,
                         strict=False):
        assert rec.prev == prev and rec.link == B.link_of(rec)
        for role, rel in rec.files.items():
            assert digest_file(honest / rel) == rec.digests[role]
    assert man.complete and man.final_model == man.checkpoints()[-1].digests["model"]


def test_final_digest_equals_seeded_training(honest: Path) -> None:
    _, digest = train_seeded(TrainConfig(seed=1, arch={"type": "cnn"}, epochs=2, optimizer={
        "name": "sgd", "lr": 0.05, "momentum": 0.9}))
    assert B.read_manifest(honest).final_model == digest


def test_epoch_roots_cover_each_epochs_records(honest: Path) -> None:
    man = B.read_manifest(honest)
    groups = B.epoch_groups(man.records)
    assert len(groups) == len(man.anchors) == 2
    for a, g in zip(man.anchors, groups, strict=True):
        assert a.root == merkle_root([r.model_dump() for r in g]).hex() and a.count == len(g)
        assert a.tx_hash is None  # no ledger: roots computed, nothing anchored


def test_plain_loop_with_adam_cosine_and_noise_is_accepted(tmp_path: Path, digits) -> None:
    """The recorder wraps a hand-written loop; the verifier replays it from the manifest."""
    arch = {"type": "mlp", "hidden": [32]}
    x, y = digits[0][:400], digits[1][:400]
    model = init_weights(build_model(arch), "kaiming_normal", 5)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    rec = ProofRecorder(tmp_path / "b", model, opt, (x, y), arch=arch, k=5, epochs=2,
                        batch_size=50, data_seed=9, init_seed=5, init_scheme="kaiming_normal",
                        schedule={"name": "cosine", "min_lr": 0.001},
                        transforms=[{"name": "gaussian_noise", "std": 0.05, "seed": 4}])
    lrs = []
    for xb, yb in rec.batches():
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
        lrs.append(opt.param_groups[0]["lr"])
        rec.step()
    man = rec.finish()
    assert lrs[0] == pytest.approx(0.01) and lrs[-1] < lrs[0]
    assert man.final_model == digest_state_dict(model.state_dict())
    rep = verify_bundle(tmp_path / "b", (x, y), q=2, r=2)
    assert rep.accepted, rep.reasons
    assert rep.max_error <= rep.threshold


def test_recorder_refuses_misuse(tmp_path: Path, digits) -> None:
    arch = {"type": "mlp"}
    model = init_weights(build_model(arch), "uniform_fan_in", 0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kw = dict(arch=arch, k=5, epochs=1, batch_size=64, data_seed=1)
    with pytest.raises(InputError, match="init_weights"):
        ProofRecorder(tmp_path / "a", model, opt, digits, init_seed=1, **kw)
    with pytest.raises(InputError, match="architecture"):
        ProofRecorder(tmp_path / "a", model, opt, digits, init_seed=0,
                      **{**kw, "arch": {"type": "cnn"}})
    rec = ProofRecorder(tmp_path / "b", model, opt, digits, init_seed=0, **kw)
    with pytest.raises(InputError, match="without a batch"):
        rec.step()
    with pytest.raises(InputError, match="incomplete"):
        rec.finish()
    with pytest.raises(InputError, match="call recorder.step"):
        for _ in rec.batches():
            pass
    with pytest.raises(InputError, match="cannot replay optimizer settings: dampening"):
        ProofRecorder(tmp_path / "d", model, torch.optim.SGD(model.parameters(), lr=0.1,
                                                             momentum=0.9, dampening=0.5),
                      digits, init_seed=0, **kw)
    with pytest.raises(InputError, match="SGD and Adam"):
        ProofRecorder(tmp_path / "c", model, torch.optim.RMSprop(model.parameters()), digits,
                      init_seed=0, **kw)


def test_bad_bundles_are_one_line_input_errors(tmp_path: Path, honest: Path) -> None:
    with pytest.raises(NotFoundError):
        B.read_manifest(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="not a proof bundle"):
        B.read_manifest(tmp_path / "empty")
    bad = tmp_path / "bad"
    shutil.copytree(honest, bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="malformed proof manifest"):
        B.read_manifest(bad)
    doc = json.loads((honest / "manifest.json").read_text())
    doc["header"]["k"] = "ten"
    (bad / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="header.k"):
        B.read_manifest(bad)


def test_pack_unpack_round_trip_is_deterministic(tmp_path: Path, honest: Path) -> None:
    data = B.pack(honest)
    assert B.pack(honest) == data
    out = B.unpack(data, tmp_path / "copy")
    assert B.read_manifest(out) == B.read_manifest(honest)
    with pytest.raises(InputError):
        B.unpack(b"not a tar", tmp_path / "x")
