"""Training across untrusted workers on a local Ray cluster: three workers, one Byzantine
(every update scaled by 1 + 1e-4), which the coordinator's replay catches; the exclusion
and its evidence are on the (embedded EVM) ledger; the one proof of the run is accepted
by the ordinary verifier (`mltrail pol verify`) with error exactly 0 (its replay adds the
per-shard gradients as the coordinator did); a coordinator that let a cheating update
through, or that scales the aggregate gradient by 1 + 1e-5, writes a proof the verifier
rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dpkit import digits_dataset, mlp, save_data, sgd
from mltrail.distributed.coordinator import Options, train_distributed
from mltrail.testing import distributed_adversaries as adv

pytestmark = pytest.mark.xdist_group("ray")

N = 288  # 3 workers x 16 samples x 6 steps per epoch


@pytest.fixture
def run(ray_local):
    return lambda out, behaviours=None, **kw: _run(ray_local, out, behaviours, **kw)


def _run(pool, out: Path, behaviours=None, **kw):
    model = mlp()
    opts = Options(workers=3, batch_size=16, epochs=2, k=3, seed=1, worker_cpus=1.0,
                   **kw.pop("opts", {}))
    return train_distributed(out, model, sgd(model), digits_dataset(N), loss="cross_entropy",
                             opts=opts, behaviours=behaviours, secret=b"s" * 32, pool=pool,
                             **kw)


def test_byzantine_worker_caught_excluded_on_ledger_and_proof_verified(
        home, open_as, cli, run, tmp_path: Path) -> None:
    from mltrail.provenance.digest import digest_state_dict

    admin, dev = open_as("admin"), open_as("dev")
    admin.grant_role(dev.address, "data_steward")
    ds = digits_dataset(N)
    data = save_data(ds, tmp_path / "digits.safetensors")
    ds_id = dev.register(dev.lifecycle.bound_kind("pol", "data_kind"),
                         digest_state_dict({"x": ds.tensors[0], "y": ds.tensors[1]}),
                         metadata={"name": "digits"}).artefact_id

    honest = run(tmp_path / "honest")
    assert honest["caught"] == [] and honest["checks"] > 0
    assert honest["tolerance"]["basis"] == "same-environment"  # bitwise, not a guess
    summary = run(tmp_path / "byz", behaviours={2: adv.ScaledUpdate()}, ledger=dev,
                   opts={"dataset_id": ds_id})
    assert [c["worker"] for c in summary["caught"]] == [2] and summary["excluded"] == [2]
    caught = summary["caught"][0]
    # the exclusion is on chain: an anchor on the dataset whose metadata is the evidence
    from mltrail.pol.bundle import read_manifest

    epochs = read_manifest(tmp_path / "byz").anchors  # the proof's epoch roots, on chain too
    assert len(epochs) == 2 and all(a.tx_hash for a in epochs)
    on_chain = [e for e in dev.anchors(ds_id) if e.tx_hash == caught["ledger"]["tx_hash"]]
    assert len(on_chain) == 1 and on_chain[0].actor == dev.address
    assert on_chain[0].args["metadata_digest"] == caught["evidence"]
    evidence = json.loads(dev.home.store.get(caught["evidence"]))
    assert evidence["worker"] == 2 and evidence["round"] == caught["round"]
    assert evidence["claimed_update"] != evidence["replayed_update"]
    assert evidence["tolerance"]["threshold"] == 0.0

    def verify(bundle: Path, *extra: str):
        return cli("pol", "verify", str(bundle), "--data", str(data), *extra, "--json",
                   home=home.root)

    # the proof declares its data-parallel arithmetic (shards of 16, accumulated as the
    # coordinator does): the verifier replays it bit for bit, no calibration involved,
    # serially and with segments replayed in parallel processes alike
    for bundle, extra in (("honest", ()), ("byz", ("--workers", "2"))):
        spec = read_manifest(tmp_path / bundle).header.training
        assert spec.shard_size == 16  # type: ignore[union-attr]
        res = verify(tmp_path / bundle, "--q", "2", *extra)
        assert res.code == 0, res.out + res.err
        rep = res.json()
        assert rep["tolerance"]["basis"] == "same-environment"  # type: ignore[index]
        assert rep["tolerance"]["threshold"] == 0.0  # type: ignore[index]
        segments = rep["segments"]  # type: ignore[index]
        assert segments and all(s["error"] == 0.0 and s["optim_error"] in (None, 0.0)
                                for s in segments)

    # a coordinator that keeps a cheating update writes a proof the verifier rejects
    kept = run(tmp_path / "kept", behaviours={1: adv.RandomUpdate(4)},
                opts={"exclude": False, "spot_check": 0.0})
    assert kept["caught"] == []
    res = verify(tmp_path / "kept")
    assert res.code == 1, res.out + res.err


def test_a_worker_caught_after_unchecked_updates_restarts_the_run_without_it(
        ray_local, tmp_path: Path) -> None:
    """Worker 2's first update is accepted unchecked and its second caught: that first
    update is in the model and a whole-segment replay would reject the proof, so the
    coordinator trains again from the start without worker 2; the proof then verifies
    with error exactly 0. (Zeros digest alike on every machine, so the secret below gives
    the same draws everywhere.)"""
    from mltrail.distributed import polapi
    from mltrail.distributed.spotcheck import Challenger
    from mltrail.pol.verifier import verify_bundle

    zeros = polapi.digest_state_dict({n: torch.zeros_like(t)
                                      for n, t in mlp().state_dict().items()})
    secret = next(s for s in (bytes([i]) * 32 for i in range(256))
                  if Challenger(s).draw(0, 2, zeros) >= 0.5 > Challenger(s).draw(1, 2, zeros))
    model = mlp()
    opts = Options(workers=3, batch_size=16, epochs=2, k=3, seed=1, spot_check=0.5)
    summary = train_distributed(tmp_path / "p", model, sgd(model), digits_dataset(N),
                                loss="cross_entropy", opts=opts, secret=secret,
                                behaviours={2: adv.ZeroUpdate()}, pool=ray_local)
    assert summary["restarts"] == [{"worker": 2, "caught_round": 1, "unchecked_rounds": [0]}]
    assert [c["worker"] for c in summary["caught"]] == [2] and summary["excluded"] == [2]
    ds = digits_dataset(N)
    rep = verify_bundle(tmp_path / "p", {"x": ds.tensors[0], "y": ds.tensors[1]}, seed=0,
                        q=2, r=4)
    assert rep.verdict == "accepted" and rep.max_error == 0.0, rep.reasons


@pytest.mark.parametrize("seed", [3, 4])
def test_coordinator_scaling_the_aggregate_is_rejected(ray_local, tmp_path: Path,
                                                         seed: int) -> None:
    """A coordinator that scales every step's aggregate gradient by 1 + 1e-5 (honest
    workers, honest records) writes a proof the exact replay rejects; the same proof
    labelled as before issue 22 (+dp3, full-batch replay, the calibrated floor 0.001)
    was accepted: the loophole this closes."""
    from mltrail.pol.verifier import verify_bundle
    from mltrail.testing import distributed_coordinators as dc

    model = mlp()
    opt = sgd(model)
    dc.ScaledAggregate(1e-5).install(opt)
    ds = digits_dataset(N)
    opts = Options(workers=3, batch_size=16, epochs=2, k=3, seed=seed, spot_check=0.0)
    train_distributed(tmp_path / "p", model, opt, ds, loss="cross_entropy", opts=opts,
                      secret=b"s" * 32, pool=ray_local)
    data = {"x": ds.tensors[0], "y": ds.tensors[1]}
    rep = verify_bundle(tmp_path / "p", data, seed=seed)
    assert rep.verdict == "rejected" and rep.tolerance["basis"] == "same-environment"
    assert 0.0 < rep.max_error < dc.OLD_FLOOR
    dc.as_before_issue_22(tmp_path / "old", tmp_path / "p", 3)
    old = verify_bundle(tmp_path / "old", data, seed=seed,
                        calibration=dc.calibrated_floor(tmp_path / "old"))
    assert old.tolerance["basis"] == "calibrated"
    assert old.verdict == "accepted", old.reasons
