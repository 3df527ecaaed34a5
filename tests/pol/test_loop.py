"""Proof-of-Learning for a user's own PyTorch loop: three real trainings recorded with the
loop recorder, verified through the public API and the CLI (replay in a separate
process), the project's spoofs and user-loop adversaries rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import mltrail
from mltrail.errors import InputError
from mltrail.pol.bundle import read_manifest
from mltrail.pol.loopspec import LoopSpec
from mltrail.provenance.digest import save_state_dict
from mltrail.reference import pinned_threads
from mltrail.testing import pol_forgeries as forgeries
from mltrail.testing import pol_loop_adversaries as adv
from mltrail.testing import pol_userloops as loops


@pytest.fixture(scope="module")
def proofs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("loops")
    with pinned_threads(1):  # the replay runs with the verifier's thread count (one)
        return {"resnet": loops.record_resnet(base / "resnet"),
                "mlp": loops.record_mlp(base / "mlp"),
                "transformer": loops.record_transformer(base / "transformer")}


def test_resnet_adam_two_groups_cosine_verified_through_the_cli(proofs: dict[str, Path],
                                                                 tmp_path: Path, cli) -> None:
    from safetensors.torch import load_file

    man = read_manifest(proofs["resnet"])
    spec = man.header.training
    assert isinstance(spec, LoopSpec)
    assert spec.optimizer.name == "Adam" and len(spec.optimizer.groups) == 2
    assert spec.optimizer.groups[1].options["lr"] == 1e-2
    assert spec.scheduler is not None and spec.scheduler.name == "CosineAnnealingLR"
    # exported: the model crosses as a torch.export program, no factory is named
    assert spec.model is None and spec.program is not None
    assert any(k.endswith("running_mean") for k in
               load_file(proofs["resnet"] / man.checkpoints()[1].files["model"]))
    data = tmp_path / "images.safetensors"
    save_state_dict(loops.loop_data(proofs["resnet"]), data)
    res = cli("pol", "verify", str(proofs["resnet"]), "--data", str(data), "--seed", "1",
              "--json")
    assert res.code == 0, res.err
    out = res.json()
    assert out["verdict"] == "accepted"
    assert [c["name"] for c in out["checks"]][-6:] == ["final model", "files", "scheduler",
                                                       "tensors", "init", "replay"]
    assert max(s["error"] for s in out["segments"]) <= 1e-6


def test_mlp_tabular_custom_loss_and_transformer_accepted(proofs: dict[str, Path]) -> None:
    for name in ("mlp", "transformer"):
        rep = mltrail.verify_bundle(proofs[name], loops.loop_data(proofs[name]), seed=3)
        assert rep.verdict == "accepted", (name, rep.reasons)
        assert rep.segments and max(s.error for s in rep.segments) <= 1e-6
        assert rep.curve and all(p.loss is not None for p in rep.curve)  # own loss programs
    spec = read_manifest(proofs["transformer"]).header.training
    assert isinstance(spec, LoopSpec) and spec.rng  # dropout: RNG state recorded per step
    mlp = read_manifest(proofs["mlp"]).header.training
    assert isinstance(mlp, LoopSpec) and mlp.program is not None \
        and mlp.program.transform is not None and mlp.program.loss is not None


def test_the_projects_spoofs_are_rejected_on_a_user_loop(proofs: dict[str, Path],
                                                         tmp_path: Path) -> None:
    honest = proofs["mlp"]
    data = loops.loop_data(honest)
    forged = {
        "interpolation": lambda o: forgeries.interpolation_spoof(o, honest, lr=None),
        "reorder, re-chained": lambda o: forgeries.tamper_states(o, honest, "reorder",
                                                                 rechain=True),
        "reorder, naive": lambda o: forgeries.tamper_states(o, honest, "reorder",
                                                            rechain=False),
        "lr edited, re-chained": lambda o: forgeries.edit_hyperparameters(
            o, honest, {"lr": 0.05}, rechain=True),
        "lr edited, naive": lambda o: forgeries.edit_hyperparameters(
            o, honest, {"lr": 0.05}, rechain=False),
    }
    where = {}
    for name, make in forged.items():
        out = tmp_path / name.replace(" ", "_").replace(",", "")
        make(out)
        rep = mltrail.verify_bundle(out, data, seed=5)
        assert rep.verdict == "rejected", name
        where[name] = rep.checks[-1].name
    assert where == {"interpolation": "replay", "reorder, re-chained": "replay",
                     "reorder, naive": "files", "lr edited, re-chained": "scheduler",
                     "lr edited, naive": "chain"}


def test_user_loop_adversaries(tmp_path: Path) -> None:
    code = tmp_path / "code"
    data = {"x": loops.tabular_data(n=64, seed=0).tensors["x"],
            "y": loops.tabular_data(n=64, seed=0).tensors["y"]}
    honest = adv.honest(tmp_path / "honest", code, 0)
    # the pinned module swapped for another file with the same import path: refused
    # before any of it runs (the verifier's copy of the code: exit 2, never a verdict)
    swapped, folder = adv.swap_source(tmp_path / "swap", code, 0, repin=False)
    with pytest.raises(InputError, match="does not match the digest pinned"):
        mltrail.verify_bundle(swapped, data, code_paths=[str(folder)], seed=1,
                              trusted_code=True)
    # a loss with hidden state (a call counter): replayed from fresh imports, it diverges
    hidden = adv.hidden_state(tmp_path / "hidden", code, 0)
    shown: list[tuple[int, float]] = []  # the child's segments, as each finished
    planned: list[int] = []  # the bar's total, before the first segment
    counted: list[int] = []
    rep = mltrail.verify_bundle(hidden, data, code_paths=[str(code)], seed=1, trusted_code=True,
                                on_segment=lambda s: shown.append((s.index, s.error)),
                                on_plan=lambda n: planned.append(len(shown) * 1000 + n),
                                progress=counted.append)
    assert rep.verdict == "rejected" and rep.checks[-1].name == "replay", rep.reasons
    assert sorted(shown) == sorted((s.index, s.error) for s in rep.segments) and shown
    assert planned == [len(rep.segments)] and sum(counted) == len(rep.segments)
    # one checkpoint's scheduler state edited, the manifest re-chained
    adv.edit_scheduler_state(tmp_path / "sched", honest, 0)
    rep = mltrail.verify_bundle(tmp_path / "sched", data, code_paths=[str(code)], seed=1,
                                trusted_code=True)
    assert rep.verdict == "rejected" and rep.checks[-1].name == "scheduler"


def test_secrets_stay_out_of_the_replay_and_bad_data_is_one_line(
        proofs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, cli) -> None:
    from mltrail.pol.loopverify import child_env

    monkeypatch.setenv("MLTRAIL_PASSWORD", "pw")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = child_env()
    assert "MLTRAIL_PASSWORD" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    res = cli("pol", "verify", str(proofs["mlp"]), "--data", "no-such-file")
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res.err


def _tiny(tmp: Path, **kw: Any) -> dict[str, Any]:
    model = loops.make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(torch.zeros(8, 10), torch.zeros(8, dtype=torch.long)),
                        batch_size=4)
    args: dict[str, Any] = {"out": tmp / "p", "model": model, "optimizer": opt,
                            "loader": loader, "model_factory": loops.make_mlp,
                            "loss": loops.cross_entropy, "epochs": 1, "k": 1}
    args.update(kw)
    return args


def test_the_recorder_refuses_what_it_cannot_replay(tmp_path: Path) -> None:
    def local_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a.sum()

    with pytest.raises(InputError, match="import path"):
        mltrail.record_loop(**_tiny(tmp_path, loss=local_loss, trusted_code=True))
    with pytest.raises(InputError, match="standard library"):
        mltrail.record_loop(**_tiny(tmp_path, loss="os:system", trusted_code=True))
    with pytest.raises(InputError, match="neither in the vocabulary"):
        mltrail.record_loop(**_tiny(tmp_path, loss="os:system"))
    with pytest.raises(InputError, match="not what"):
        mltrail.record_loop(**_tiny(tmp_path, model_factory=loops.make_resnet,
                                    trusted_code=True))
    args = _tiny(tmp_path)
    lam = torch.optim.lr_scheduler.LambdaLR(args["optimizer"], lambda s: 0.9 ** s)
    with pytest.raises(InputError, match="cannot be rebuilt.*CosineAnnealingLR"):
        mltrail.record_loop(**{**args, "scheduler": lam})
    args = _tiny(tmp_path)
    args["loader"] = DataLoader(args["loader"].dataset, batch_size=4,
                                collate_fn=lambda b: b)
    with pytest.raises(InputError, match="collate"):
        mltrail.record_loop(**args)
    args = _tiny(tmp_path, epochs=1)
    sched = torch.optim.lr_scheduler.StepLR(args["optimizer"], step_size=1)
    rec = mltrail.record_loop(**{**args, "scheduler": sched})
    with pytest.raises(InputError, match="scheduler has stepped 0 times"):
        for xb, yb in rec.loader:
            args["optimizer"].zero_grad()
            loops.cross_entropy(args["model"](xb), yb).backward()
            args["optimizer"].step()
            rec.step()  # the loop forgot sched.step()
    with pytest.raises(InputError, match="without a batch"):
        mltrail.record_loop(**_tiny(tmp_path / "again")).step()


def test_a_folder_of_files_is_data_too(tmp_path: Path) -> None:
    folder = loops.write_folder(tmp_path / "samples")
    torch.manual_seed(0)
    model = loops.make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(mltrail.FolderDataset(folder, load=loops.load_sample), batch_size=8,
                        shuffle=True)
    with pytest.raises(InputError, match="FolderDataset's load function is Python"):
        mltrail.record_loop(tmp_path / "refused", model, opt, loader, loss="cross_entropy",
                            epochs=1)
    with mltrail.record_loop(tmp_path / "proof", model, opt, loader,
                             model_factory=loops.make_mlp, loss=loops.cross_entropy,
                             epochs=1, k=2, trusted_code=True) as rec:
        for xb, yb in rec.loader:
            opt.zero_grad()
            loops.cross_entropy(model(xb), yb).backward()
            opt.step()
            rec.step()
    spec = read_manifest(tmp_path / "proof").header.training
    assert isinstance(spec, LoopSpec) and spec.data.kind == "folder" and spec.data.n == 32
    from mltrail.provenance.digest import digest_path

    assert spec.data.digest == digest_path(folder)  # a registered folder's content digest
    rep = mltrail.verify_bundle(tmp_path / "proof", folder, seed=2, trusted_code=True)
    assert rep.verdict == "accepted", rep.reasons
    assert rep.trusted_code and rep.qualifier is not None and "trusted code" in rep.qualifier
    assert [p.step for p in rep.curve] == [0, 2, 4] and rep.curve[0].accuracy is not None
    (folder / "sample-0003.npy").write_bytes((folder / "sample-0004.npy").read_bytes())
    with pytest.raises(InputError, match="not the committed"):  # the verifier's data
        mltrail.verify_bundle(tmp_path / "proof", folder, seed=2, trusted_code=True)


def test_calibrate_on_the_users_own_proof(proofs: dict[str, Path], tmp_path: Path) -> None:
    from mltrail.pol.calibration import calibrate_loop

    res = calibrate_loop([proofs["mlp"]], loops.loop_data(proofs["mlp"]), float64=False)
    assert res["replays"] == len(read_manifest(proofs["mlp"]).checkpoints()) - 1
    assert res["honest_max"] < 1e-3 and res["threshold"] >= 1e-3


def test_pol_train_bundles_are_loop_specs_with_their_header_digest(honest: Path) -> None:
    """The reference task as ``pol train`` records it is a loop spec (exported program,
    the whole data shuffled every epoch), its header digest intact."""
    from mltrail.pol.bundle import genesis_ok

    man = read_manifest(honest)
    spec = man.header.training
    assert isinstance(spec, LoopSpec) and spec.program is not None and genesis_ok(man)
    assert spec.sampler == "permutation"
