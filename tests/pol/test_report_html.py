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
