"""The recorder (``pol train``'s loop spec and a hand-written loop) and the bundle format:
what is committed, chained, anchored and written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from mltrail.errors import InputError, NotFoundError
from mltrail.pol import bundle as B
from mltrail.pol.checks import expected_layout
from mltrail.pol.loop import record_loop
from mltrail.pol.loopdata import ArrayDataset
from mltrail.pol.loopspec import LoopSpec, LossSpec
from mltrail.pol.reftask import record_reference
from mltrail.pol.verifier import verify_bundle
from mltrail.provenance.anchor import merkle_root
from mltrail.provenance.digest import digest_file, digest_json, digest_state_dict
from mltrail.reference import build_model


def test_manifest_commits_everything_the_replay_needs(honest: Path, digits) -> None:
    man = B.read_manifest(honest)
    h = man.header
    spec = h.training
    assert isinstance(spec, LoopSpec) and spec.optimizer.name == "SGD"
    (group,) = spec.optimizer.groups
    assert group.options["lr"] == 0.05 and group.options["momentum"] == 0.9
    assert isinstance(spec.loss, LossSpec) and spec.loss.name == "cross_entropy"
    assert h.k == 10 and h.init.seed == 1 and spec.sampler == "permutation"
    assert spec.data.digest == digest_state_dict({"x": digits[0], "y": digits[1]})
    assert spec.data.n == len(digits[1]) and h.torch == torch.__version__
    assert man.header_digest == digest_json(h.model_dump())
    assert [(r.type, r.step, r.epoch) for r in man.records] == expected_layout(spec, 10)
    for prev, rec in zip([man.header_digest] + [r.link for r in man.records], man.records,
                         strict=False):
        assert rec.prev == prev and rec.link == B.link_of(rec)
        for role, rel in rec.files.items():
            assert digest_file(honest / rel) == rec.digests[role]
    assert man.complete and man.final_model == man.checkpoints()[-1].digests["model"]


def test_the_same_seed_records_the_same_run(tmp_path: Path, digits) -> None:
    run = {"arch": {"type": "mlp", "hidden": [8]}, "optimizer": {"name": "sgd", "lr": 0.1},
           "epochs": 1, "k": 20, "batch_size": 64}
    a = record_reference(tmp_path / "a", *digits, seed=3, **run)
    b = record_reference(tmp_path / "b", *digits, seed=3, **run)
    c = record_reference(tmp_path / "c", *digits, seed=4, **run)
    assert a.final_model == b.final_model != c.final_model


def test_epoch_roots_cover_each_epochs_records(honest: Path) -> None:
    man = B.read_manifest(honest)
    groups = B.epoch_groups(man.records)
    assert len(groups) == len(man.anchors) == 2
    for a, g in zip(man.anchors, groups, strict=True):
        assert a.root == merkle_root([r.model_dump() for r in g]).hex() and a.count == len(g)
        assert a.tx_hash is None  # no ledger: roots computed, nothing anchored


def test_plain_loop_with_adam_and_a_cosine_schedule_is_accepted(tmp_path: Path,
                                                                  digits) -> None:
    """A hand-written loop under the recorder; the verifier replays it from the manifest
    (named optimizer and scheduler classes, exported model)."""
    x, y = digits[0][:400], digits[1][:400]
    torch.manual_seed(5)
    model = build_model({"type": "mlp", "hidden": [32]})
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=16, eta_min=0.001)
    loader = DataLoader(ArrayDataset.of({"x": x, "y": y}), batch_size=50, shuffle=True)
    lrs = []
    with record_loop(tmp_path / "b", model, opt, loader, loss="cross_entropy", epochs=2,
                     k=5, scheduler=sched, init_seed=5) as rec:
        for _ in range(2):
            for xb, yb in rec.loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
                sched.step()
                lrs.append(opt.param_groups[0]["lr"])
                rec.step()
    man = rec.manifest
    assert lrs[-1] < lrs[0] <= 0.01
    assert man.final_model == digest_state_dict(model.state_dict())
    rep = verify_bundle(tmp_path / "b", (x, y), q=2, r=2)
    assert rep.accepted, rep.reasons
    assert rep.max_error <= rep.threshold


def test_recorder_refuses_misuse(tmp_path: Path, digits) -> None:
    model = build_model({"type": "mlp"})
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    data = ArrayDataset.of({"x": digits[0][:64], "y": digits[1][:64]})
    with pytest.raises(InputError, match="default_collate"):
        record_loop(tmp_path / "a", model, opt, DataLoader(data, batch_size=8,
                    collate_fn=lambda b: b), loss="cross_entropy", epochs=1)
    with pytest.raises(InputError, match="sgd or adam"):
        record_reference(tmp_path / "c", *digits, arch={"type": "mlp"}, seed=0,
                         optimizer={"name": "rmsprop", "lr": 0.1})
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


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
