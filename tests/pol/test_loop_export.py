"""Exported loop proofs: the replay runs none of the prover's Python. Programs that try to
run code or differ from what was trained are refused or rejected, a patching --code folder
never runs, a loss outside the vocabulary is refused, and a trusted-code proof is never a
verdict without the verifier's explicit choice (missing --code: exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import mltrail
from mltrail.errors import InputError
from mltrail.provenance.digest import save_state_dict
from mltrail.reference import pinned_threads
from mltrail.testing import pol_export_adversaries as xadv
from mltrail.testing import pol_loop_adversaries as adv
from mltrail.testing import pol_patching
from mltrail.testing import pol_userloops as loops


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with pinned_threads(1):
        return loops.record_mlp(tmp_path_factory.mktemp("x") / "mlp", epochs=2, k=2)


def test_program_attacks_are_refused_before_anything_runs(mlp: Path, tmp_path: Path) -> None:
    data = loops.loop_data(mlp)
    where = {}
    for kind in xadv.KINDS:
        canary = tmp_path / f"canary-{kind}"
        bundle = xadv.tamper_program(tmp_path / kind, mlp, kind, canary)
        rep = mltrail.verify_bundle(bundle, data, seed=1)
        assert not canary.exists(), kind
        where[kind] = rep.checks[-1].name if rep.verdict == "rejected" else "accepted"
    # what could run code is refused by the program check; guards code is dropped, never
    # executed (the rest of that program is honest: accepted, and the canary never written);
    # a graph that differs from the one trained (tanh -> relu) is caught by the replay
    assert where == {"expr": "program", "guards": "accepted", "call": "program",
                     "custom_op": "program", "treespec": "program",
                     "constant_obj": "program", "swap": "replay"}, where
    rep = mltrail.verify_bundle(xadv.foreign_loss(tmp_path / "loss", mlp), data, seed=1)
    assert rep.verdict == "rejected" and rep.checks[-1].name == "program"
    assert "not in the vocabulary" in rep.reasons[0]


def test_no_prover_code_runs_and_a_patching_code_folder_is_inert(mlp: Path, tmp_path: Path,
                                                                   cli) -> None:
    canary = tmp_path / "canary"
    folder = xadv.patching_code_folder(tmp_path / "code", canary)
    data = tmp_path / "data.safetensors"
    save_state_dict(loops.loop_data(mlp), data)
    res = cli("pol", "verify", str(mlp), "--data", str(data), "--code", str(folder),
              "--seed", "2", "--json")
    assert res.code == 0, res.err
    out = res.json()
    assert out["verdict"] == "accepted" and not out["trusted_code"]
    assert "no Python of the prover's runs" in next(
        c["detail"] for c in out["checks"] if c["name"] == "program")
    assert not canary.exists()


@pytest.mark.parametrize("where", ["module", "folder"])
def test_code_that_patches_the_replay_runs_only_where_the_verifier_trusts_code(
        where: str, tmp_path: Path) -> None:
    """Issue 18's third attack: a poisoned final model, and code that makes every replay
    return the bundle's next checkpoint. Exported, it never runs and the final segment
    rejects; in trusted-code mode a patching *pinned module* does run and is accepted
    (what the mode's label and the on-chain override are for), while start-up hooks and
    shadowing packages in the --code folder stay inert there too."""
    from mltrail.pol.loopdata import tensors_of

    tensors = tensors_of(loops.tabular_data(n=64, seed=3))
    assert tensors is not None
    for trusted in (False, True):
        canary = tmp_path / f"canary-{trusted}"
        with pinned_threads(1):
            if where == "module":
                folder = tmp_path / f"code-{trusted}"
                bundle = pol_patching.patched_module(tmp_path / f"p-{trusted}", folder, 3,
                                                     canary, trusted_code=trusted)
            else:
                bundle, folder = pol_patching.patched_folder(
                    tmp_path / f"p-{trusted}", tmp_path / f"code-{trusted}", 3, canary,
                    trusted_code=trusted)
        rep = mltrail.verify_bundle(bundle, tensors, code_paths=[str(folder)], seed=5,
                                    trusted_code=trusted)
        patched = trusted and where == "module"
        assert canary.exists() == patched
        if patched:
            assert rep.verdict == "accepted" and rep.max_error == 0.0 and rep.trusted_code
        else:
            assert rep.verdict == "rejected", rep.reasons
            last = max(rep.segments, key=lambda seg: seg.end_step)
            assert last.end_step == 12 and last.error > 0.5 and not last.ok


def test_trusted_code_is_explicit_and_missing_code_is_input_error(tmp_path: Path,
                                                                  cli) -> None:
    code = tmp_path / "code"
    bundle = adv.honest(tmp_path / "honest", code, 0)
    data = tmp_path / "data.safetensors"
    save_state_dict(loops.loop_data(bundle), data)
    from mltrail.pol.bundle import genesis_ok, read_manifest

    man = read_manifest(bundle)  # serialised as before programs existed: old digests hold
    assert "program" not in man.header.training.model_dump() and genesis_ok(man)
    base = ["pol", "verify", str(bundle), "--data", str(data), "--seed", "1"]
    res = cli(*base, "--code", str(code))  # the verifier did not choose to run code
    assert res.code == 2 and "--trusted-code" in res.err, res.err
    missing = tmp_path / "elsewhere"
    missing.mkdir()
    res = cli(*base, "--trusted-code", "--code", str(missing))  # code not found
    assert res.code == 2 and "cannot find module" in res.err and "REJECTED" not in res.out
    canary = tmp_path / "canary"
    shutil.copytree(code, tmp_path / "patched")
    xadv.patching_code_folder(tmp_path / "patched", canary, ("torch", "safetensors"))
    res = cli(*base, "--trusted-code", "--code", str(tmp_path / "patched"), "--json")
    assert res.code == 0, res.err
    assert res.json()["trusted_code"] and not canary.exists()
    with pytest.raises(InputError, match="trusted-code"):
        mltrail.verify_bundle(bundle, loops.loop_data(bundle), code_paths=[str(code)])


def test_one_cycle_is_rebuilt_and_a_vocabulary_loss_needs_no_program(tmp_path: Path) -> None:
    from mltrail.pol.bundle import read_manifest

    torch.manual_seed(0)
    model = loops.make_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=12)
    loader = DataLoader(loops.tabular_data(n=64), batch_size=16, shuffle=True)
    with pinned_threads(1), mltrail.record_loop(
            tmp_path / "p", model, opt, loader, loss=torch.nn.CrossEntropyLoss(
                label_smoothing=0.1), scheduler=sched, epochs=3, k=2, init_seed=7) as rec:
        for _ in range(3):
            for xb, yb in rec.loader:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(xb), yb,
                                                  label_smoothing=0.1).backward()
                opt.step()
                sched.step()
                rec.step()
    spec = read_manifest(tmp_path / "p").header.training
    assert spec.scheduler is not None and spec.scheduler.name == "OneCycleLR"
    assert spec.loss is not None and spec.program is not None and spec.program.loss is None
    with pinned_threads(1):
        rep = mltrail.verify_bundle(tmp_path / "p", loops.loop_data(tmp_path / "p"), seed=1)
    assert rep.verdict == "accepted", rep.reasons
    assert rep.max_error == 0.0 and rep.init_origin == "seed"
