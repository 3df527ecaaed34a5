"""Training across untrusted workers on a local Ray cluster: three workers, one Byzantine
(every update scaled by 1 + 1e-4), which the coordinator's replay catches; the exclusion
and its evidence are on the (embedded EVM) ledger; the one proof of the run is accepted
by the ordinary verifier (`mltrail pol verify`, thresholds from `pol calibrate` on an
honest distributed run), and a coordinator that let a cheating update through writes a
proof the verifier rejects."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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

    # the proof declares its data-parallel arithmetic: no silent bitwise claim
    res = verify(tmp_path / "byz")
    assert res.code == 2 and "+dp3" in res.err
    cal = tmp_path / "cal.json"
    res = cli("pol", "calibrate", "--bundle", str(tmp_path / "honest"), "--data", str(data),
              "--out", str(cal), "--json", home=home.root)
    assert res.code == 0, res.err
    for bundle in ("honest", "byz"):
        res = verify(tmp_path / bundle, "--calibration", str(cal))
        assert res.code == 0, res.out + res.err
        assert res.json()["tolerance"]["basis"] == "calibrated"  # type: ignore[index]

    # a coordinator that keeps a cheating update writes a proof the verifier rejects
    kept = run(tmp_path / "kept", behaviours={1: adv.RandomUpdate(4)},
                opts={"exclude": False, "spot_check": 0.0})
    assert kept["caught"] == []
    res = verify(tmp_path / "kept", "--calibration", str(cal))
    assert res.code == 1, res.out + res.err
