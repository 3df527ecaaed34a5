"""The verifier on honest proofs: accepted, across thread counts; its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mltrail.errors import InputError
from mltrail.pol import challenge as ch
from mltrail.pol.bundle import read_manifest
from mltrail.pol.calibration import DEFAULT_THRESHOLD
from mltrail.pol.verifier import relative_error, verify_bundle
from mltrail.reference import pinned_threads
from mltrail.testing.pol_forgeries import load_states


@pytest.mark.parametrize("threads", [1, 2])
def test_honest_proof_is_accepted_whatever_the_thread_count(honest: Path, digits,
                                                            threads: int) -> None:
    with pinned_threads(threads):
        rep = verify_bundle(honest, digits, q=2, r=2)
    assert rep.accepted, rep.reasons
    # the replay runs with the thread count the proof declares (recorded on one), so the
    # caller's own count changes nothing and the replay is exact
    assert rep.torch_threads == 1 and rep.tolerance is not None
    assert rep.tolerance["basis"] == "same-environment" and rep.threshold == 0.0
    assert all(s.error == 0.0 for s in rep.segments)
    whys = {s.chosen for s in rep.segments}
    assert {"top-q", "random", "predecessor"} <= whys <= {"top-q", "final", "random",
                                                          "predecessor"}
    assert max(s.index for s in rep.segments) == len(read_manifest(honest).checkpoints()) - 2
    assert all(s.ok and s.error <= DEFAULT_THRESHOLD for s in rep.segments)
    assert all(s.cosine is not None and s.cosine > 0.999 for s in rep.segments)
    if threads == 1:  # the prover also ran on one thread: bit-exact
        assert rep.max_error == 0.0
    if threads == 1:  # R from the stated miss rate: with the defaults it still passes
        auto = verify_bundle(honest, digits)
        assert auto.accepted and auto.r == auto.r_rule["r"]
        assert auto.r_rule["predicted_miss"] <= 0.01


def test_selection_top_q_final_random_and_predecessors(honest: Path, digits) -> None:
    man, states = load_states(honest)
    spec, cks = man.header.training, man.checkpoints()
    epochs = [spec.epoch_of(cks[i].step) for i in range(len(cks) - 1)]
    score = ch.scores(ch.state_changes(states))
    picked = ch.choose_segments(epochs, score, 1, 3, seed=42)
    why = dict(picked)
    tops = [i for i, w in picked if w == "top-q"]
    assert len(tops) == 2 and {epochs[i] for i in tops} == {0, 1}
    for i in tops:  # the largest change of the whole state in its epoch
        assert score[i] == max(score[j] for j in range(len(score)) if epochs[j] == epochs[i])
    assert why[len(score) - 1] in ("final", "top-q")  # the final segment, always
    assert all(i - 1 in why for i, w in picked if i > 0 and w != "predecessor")
    assert [w for _, w in picked].count("random") == 3
    runs = {tuple(i for i, w in ch.choose_segments(epochs, score, 1, 3, s) if w == "random")
            for s in range(8)}
    assert len(runs) > 1  # the verifier's seed decides which random segments
    rep = verify_bundle(honest, digits, q=100, r=0)
    assert rep.accepted and len(rep.segments) == len(man.checkpoints()) - 1


def test_r_formula() -> None:
    # hypergeometric: C(P-F, R) / C(P, R)
    assert ch.miss_probability(10, 1, 3) == pytest.approx(7 / 10)
    assert ch.miss_probability(10, 2, 3) == pytest.approx((8 * 7 * 6) / (10 * 9 * 8))
    assert ch.forged_count(13, 0.1) == 2 and ch.forged_count(5, 0.1) == 1
    r = ch.random_count(1000, 1000, 0.01, 0.1)
    assert ch.miss_probability(1000, 100, r) <= 0.01 < ch.miss_probability(1000, 100, r - 1)
    assert 40 <= r <= 45  # about ln(0.01) / ln(0.9) = 43.7
    assert ch.random_count(10, 10, 0.01, 0.1) == 10  # one fake in ten: replay all of them
    assert ch.random_count(0, 1, 0.01, 0.1) == 0  # no pool left (top-Q and final cover all)


def test_report_json_html_and_digest(tmp_path: Path, honest: Path, digits) -> None:
    rep = verify_bundle(honest, digits, q=1, r=1, seed=7)
    rep.save(tmp_path / "r.json", tmp_path / "r.html")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["verdict"] == "accepted" and doc["verifier_seed"] == 7
    assert {c["name"] for c in doc["checks"]} >= {"bounds", "chain", "layout",
                                                  "hyperparameters", "data", "program",
                                                  "anchors", "final model", "files",
                                                  "tensors", "init", "replay"}
    assert "Proof accepted" in (tmp_path / "r.html").read_text()
    assert rep.digest().startswith("sha256:")


def test_wrong_data_is_the_verifiers_input_error_and_wrong_model_rejected(
        honest: Path, digits) -> None:
    # issue 18: data other than the committed bytes are the verifier's own input error
    # (exit 2, nothing recorded), never a verdict about the proof
    x, y = digits
    y2 = y.clone()
    y2[0] = (y2[0] + 1) % 10  # one label
    with pytest.raises(InputError, match="is not the committed"):
        verify_bundle(honest, (x, y2), q=1, r=0)
    x2 = x.clone()
    x2[-1, 0, 0, 0] += 1e-3  # one pixel of the last sample
    with pytest.raises(InputError, match="is not the committed"):
        verify_bundle(honest, (x2, y), q=1, r=0)
    with pytest.raises(InputError, match="the proof commits to"):
        verify_bundle(honest, {"x": x}, q=1, r=0)
    rep = verify_bundle(honest, digits, q=1, r=0, expected_model="sha256:" + "ab" * 32)
    assert not rep.accepted and any("final model" in r for r in rep.reasons)


def test_unseeded_init_is_qualified_and_a_pretrained_start_is_not_the_seeds(
        tmp_path: Path, digits) -> None:
    """Without a committed seed the initial weights are the prover's choice: accepted,
    and the verdict says so. A start from trained weights under the seeded scheme is
    rejected by the init check (every parameter must be exactly the scheme's draw)."""
    from mltrail.pol.reftask import record_reference
    from mltrail.testing.pol_forgeries import forge_bundle

    run = {"arch": {"type": "mlp", "hidden": [16]}, "optimizer": {"name": "sgd", "lr": 0.1},
           "epochs": 1, "k": 43}
    with pinned_threads(1):
        record_reference(tmp_path / "noseed", *digits, seed=4, ledger_args={}, **run)
        record_reference(tmp_path / "seeded", *digits, seed=4, **run)
    assert read_manifest(tmp_path / "noseed").header.init.seed is None
    rep = verify_bundle(tmp_path / "noseed", digits, q=1, r=0)
    assert rep.accepted, rep.reasons
    assert rep.init_origin == "unseeded" and "unseeded init" in rep.summary()
    man, states = load_states(tmp_path / "seeded")
    states[0] = (states[-1][0], {})
    forge_bundle(tmp_path / "pretrained", man.header, states, source=tmp_path / "seeded")
    rep = verify_bundle(tmp_path / "pretrained", digits, q=1, r=0)
    assert not rep.accepted and any(r.startswith("init:") and "NOT" in r for r in rep.reasons)


def test_relative_error_and_cosine() -> None:
    w = {"a": torch.zeros(3)}
    nxt = {"a": torch.tensor([1.0, 0.0, 0.0])}
    assert relative_error(nxt, w, nxt) == (0.0, 1.0)
    err, cos = relative_error({"a": torch.tensor([0.0, 1.0, 0.0])}, w, nxt)
    assert err == pytest.approx(2 ** 0.5) and cos == pytest.approx(0.0)
    err, cos = relative_error({"a": torch.tensor([-1.0, 0.0, 0.0])}, w, nxt)
    assert err == pytest.approx(2.0) and cos == pytest.approx(-1.0)
    assert relative_error(w, w, w)[0] == float("inf")  # no update claimed
