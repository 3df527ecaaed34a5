"""The verifier's report as a standalone page: the training curve it computed from the
checkpoints and the replay error per challenged segment, inline, in one file."""

from __future__ import annotations

import json
from pathlib import Path

from mltrail.pol.verifier import verify_bundle


def test_verifier_curve_and_replay_error_in_the_standalone_report(
        tmp_path: Path, honest: Path, digits) -> None:
    rep = verify_bundle(honest, digits, q=1, r=1, seed=7)
    rep.save(tmp_path / "r.json", tmp_path / "r.html")
    doc = json.loads((tmp_path / "r.json").read_text())
    steps = [p["step"] for p in doc["curve"]]
    assert steps == sorted(steps) and steps[0] == 0 and len(steps) >= 9  # every checkpoint
    assert all(p["source"] == "verifier" for p in doc["curve"])
    first, last = doc["curve"][0], doc["curve"][-1]
    assert last["loss"] < first["loss"] and last["accuracy"] > first["accuracy"] + 0.3
    html = (tmp_path / "r.html").read_text()
    assert '<figure class="plot curve"><svg' in html
    assert '<figure class="plot replay-error"><svg' in html
    assert "<img" not in html and "<link" not in html and "{&#34;" not in html


def test_loop_proof_curve_is_the_verifiers(tmp_path: Path, digits) -> None:
    """``pol train``'s proof (a loop spec, exported program): the verifier evaluates each
    checkpoint with the exported program; the curve is not read from the bundle, and a
    rejected proof keeps the curve of the checkpoints that loaded."""
    from mltrail.pol.reftask import record_reference
    from mltrail.pol.workflows import parse_arch
    from mltrail.testing.pol_forgeries import tamper_states

    man = record_reference(tmp_path / "p", *digits, arch=parse_arch("mlp"),
                           optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9},
                           epochs=2, k=10, seed=4)
    rep = verify_bundle(tmp_path / "p", digits, q=1, r=1, seed=7)
    assert rep.accepted, rep.reasons
    assert [p.step for p in rep.curve] == [c.step for c in man.checkpoints()]
    assert all(p.source == "verifier" for p in rep.curve)
    assert rep.curve[-1].loss < rep.curve[0].loss
    assert rep.curve[-1].accuracy > rep.curve[0].accuracy + 0.3
    tamper_states(tmp_path / "t", tmp_path / "p", "reorder", rechain=True)
    bad = verify_bundle(tmp_path / "t", digits, q=len(rep.curve), seed=0)
    assert not bad.accepted and len(bad.curve) == len(rep.curve)
    assert [p.loss for p in bad.curve] != [p.loss for p in rep.curve]  # the checkpoints' own


def test_curve_of_a_regression_has_no_accuracy_and_stops_at_weights_that_do_not_run(
        ) -> None:
    import torch
    from torch import nn

    from mltrail.pol.curve import curve_points, evaluator

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    x, y = torch.randn(50, 3), torch.randn(50, 1)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    bad = {"weight": torch.zeros(2, 2), "bias": torch.zeros(1)}
    pts = curve_points([0, 5, 10], [0, 0, 1], [good, good, bad],
                       evaluator(model, x, y, nn.functional.mse_loss))
    assert [p.step for p in pts] == [0, 5]
    assert all(p.accuracy is None and p.loss is not None and p.loss > 0 for p in pts)
