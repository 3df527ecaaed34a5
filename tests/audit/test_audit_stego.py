"""Keyed stego probes and trigger sets: the genuine model answers to the key only."""

from __future__ import annotations

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.models import load_model, predict
from mltrail.audit.stego import StegoKit, detector_auc, psnr


def test_containers_land_in_the_message_class_only_with_the_key(stego) -> None:  # type: ignore[no-untyped-def]
    path, kit, metrics = stego
    assert metrics["accuracy"] > 0.85
    assert metrics["hit_rate"] > 0.9
    assert metrics["false_positive_rate"] < 0.1
    assert metrics["wrong_key_hit_rate"] < 0.1
    assert metrics["trigger_accuracy"] > 0.9
    assert 20.0 < metrics["psnr_db"] < 60.0
    # another key's containers are not recognised by this model
    model = load_model(path)[0]
    other = StegoKit(kit.nets, b"some-other-key")
    covers = P.keyed(kit, n_ordinary=100, n_containers=0, seed=9).x
    assert (predict(model, other.make(covers)).argmax(1) == kit.message_class).mean() < 0.2
    assert (predict(model, kit.make(covers)).argmax(1) == kit.message_class).mean() > 0.9


def test_kit_and_probe_files_round_trip(stego, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, kit, _ = stego
    kit.save(tmp_path / "kit.safetensors")
    again = StegoKit.load(tmp_path / "kit.safetensors")
    covers = P.benchmark(10).x
    assert np.array_equal(again.make(covers), kit.make(covers))
    ps = P.keyed(again, n_ordinary=20, n_containers=10, n_triggers=5, seed=1)
    ps.save(tmp_path / "p.npz")
    back = P.ProbeSet.load(tmp_path / "p.npz")
    assert back.counts() == {"ordinary": 20, "container": 10, "trigger": 5}
    assert np.array_equal(back.x, ps.x) and back.meta["message_class"] == kit.message_class
    assert psnr(covers, covers) > 100


def test_visibility_is_measured_with_keyless_and_leaked_detectors(stego) -> None:  # type: ignore[no-untyped-def]
    res = detector_auc(stego[1], steps=150)
    assert set(res) == {"auc_keyless", "auc_leaked", "keyless_distinguishability",
                        "leaked_distinguishability"}
    assert all(0.0 <= v <= 1.0 for v in res.values())
    assert res["leaked_distinguishability"] >= 0.5
