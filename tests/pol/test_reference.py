"""The reference task: fixed data split, models from specs, bit-reproducible seeded training."""

from __future__ import annotations

import pytest
import torch

from mltrail.errors import InputError
from mltrail.provenance.digest import digest_state_dict
from mltrail.reference import (
    TrainConfig,
    accuracy,
    build_model,
    init_weights,
    load_digits_tensors,
    train_seeded,
)


def test_digits_split_is_fixed_and_scaled() -> None:
    a, b = load_digits_tensors(), load_digits_tensors()
    assert a.x_train.shape[1:] == (1, 8, 8) and a.x_train.dtype == torch.float32
    assert float(a.x_train.min()) >= 0.0 and float(a.x_train.max()) <= 1.0
    assert len(a.y_train) + len(a.y_test) == 1797
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)


def test_digits_are_sklearns_load_digits() -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    d = load_digits_tensors()
    x = torch.cat([d.x_train, d.x_test]).reshape(-1, 64).numpy() * 16
    y = torch.cat([d.y_train, d.y_test]).numpy()
    ref = sorted(zip(map(bytes, bunch.data.astype(np.float32)), bunch.target, strict=True))
    got = sorted(zip(map(bytes, x.astype(np.float32)), y, strict=True))
    assert ref == got


@pytest.mark.parametrize("arch", [{"type": "cnn"}, {"type": "mlp", "hidden": [32]},
                                  {"type": "resnet", "depth": 8, "width": 4}])
def test_build_and_init_are_exact(arch: dict) -> None:
    m1 = init_weights(build_model(arch), "uniform_fan_in", 7)
    m2 = init_weights(build_model(arch), "uniform_fan_in", 7)
    m3 = init_weights(build_model(arch), "uniform_fan_in", 8)
    assert digest_state_dict(m1.state_dict()) == digest_state_dict(m2.state_dict())
    assert digest_state_dict(m1.state_dict()) != digest_state_dict(m3.state_dict())
    x = torch.zeros(2, 3 if arch["type"] == "resnet" else 1, 8, 8)
    assert m1(x).shape == (2, 10)


def test_bad_arch_is_input_error() -> None:
    with pytest.raises(InputError):
        build_model({"type": "transformer"})
    with pytest.raises(InputError):
        init_weights(build_model({"type": "mlp"}), "orthogonal", 0)


def test_train_seeded_is_bit_reproducible_across_thread_counts() -> None:
    cfg = TrainConfig(seed=3, arch={"type": "cnn"}, epochs=1)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        m1, d1 = train_seeded(cfg)
        torch.set_num_threads(2)
        m2, d2 = train_seeded(cfg.model_dump())
    finally:
        torch.set_num_threads(old)
    assert d1 == d2 == digest_state_dict(m1.state_dict())
    assert torch.get_num_threads() == old
    _, d3 = train_seeded(cfg.model_copy(update={"seed": 4}))
    assert d3 != d1
    data = load_digits_tensors()
    assert accuracy(m1, data.x_test, data.y_test) > 0.5  # it really learns
