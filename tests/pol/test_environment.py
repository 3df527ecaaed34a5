"""The declared environment's TF32 field: old headers unchanged, its own calibration row."""

from __future__ import annotations

import pytest

from mltrail.errors import InputError
from mltrail.pol.environment import Environment, current, declared, platform_key
from mltrail.pol.tolerance import decide, pair_entry


def _cuda(tf32: bool) -> Environment:
    return current().model_copy(update={"device": "cuda", "tf32": tf32})


def test_tf32_off_serialises_as_before_the_field_existed() -> None:
    env = current()
    assert env.tf32 is False and "tf32" not in env.model_dump()
    # a header from before the field reads as TF32 off
    assert Environment.model_validate(env.model_dump()) == env
    on = _cuda(True)
    assert on.model_dump()["tf32"] is True
    assert Environment.model_validate(on.model_dump()) == on


def test_tf32_is_its_own_platform_and_needs_its_own_calibration() -> None:
    off, on, cpu = _cuda(False), _cuda(True), current()
    assert platform_key(on) != platform_key(off) and platform_key(on).endswith(";tf32=on")
    assert ";tf32" not in platform_key(off)
    rows = [pair_entry(off, cpu, 1e-5, 3e-5, 10)]
    assert decide(off, cpu, calibration=rows).basis == "calibrated"
    with pytest.raises(InputError, match="TF32"):  # the TF32-off row does not cover it
        decide(on, cpu, calibration=rows)
    tol = decide(on, cpu, calibration=[pair_entry(on, cpu, 0.05, 0.15, 10)])
    assert tol.basis == "calibrated" and tol.threshold == 0.05


def test_declared_restores_the_tf32_flags() -> None:
    import torch

    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    with declared(_cuda(not before[1])):
        assert torch.backends.cudnn.allow_tf32 is (not before[1])
        assert torch.backends.cuda.matmul.allow_tf32 is (not before[1])
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
