"""The reference spec's parts parse as typed discriminated unions; bad ones name the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrail.errors import InputError
from mltrail.reference import TrainConfig, build_model
from mltrail.reference.specs import (
    AdamSpec,
    CosineSchedule,
    MlpArch,
    ResnetArch,
    arch_of,
    optimizer_of,
    schedule_of,
)

EXE = str(Path(sys.executable).with_name("mltrail"))


def test_each_part_parses_to_its_model() -> None:
    assert isinstance(arch_of({"type": "mlp", "hidden": [8]}), MlpArch)
    assert arch_of({"type": "resnet", "depth": 8, "width": 4}) == ResnetArch(
        type="resnet", depth=8, width=4)
    assert optimizer_of({"name": "adam", "lr": 0.01}) == AdamSpec(name="adam", lr=0.01)
    assert isinstance(schedule_of({"name": "cosine", "min_lr": 0.001}), CosineSchedule)
    assert schedule_of({}).name == "constant"


@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "mlp", "hiden": [8]}, "hiden"),
    ({"type": "transformer"}, "transformer"),
    ({"type": "cnn", "channels": [0]}, "channels"),
])
def test_bad_architectures_name_the_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InputError, match=field):
        build_model(raw)


def test_a_bad_optimizer_setting_is_refused() -> None:
    with pytest.raises(InputError, match="momentum"):
        TrainConfig(optimizer={"name": "sgd", "lr": 0.1, "momentum": -1})


def test_cli_refuses_a_misspelt_setting_with_exit_2(tmp_path: Path) -> None:
    r = subprocess.run([EXE, "pol", "train", str(tmp_path / "p"), "--no-ledger",
                        "--arch", '{"type": "mlp", "hiden": [8]}'],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "hiden" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "p").exists()


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["type", "name", "hidden", "lr", "depth", "gamma",
                                        "classes", "betas", "min_lr"]),
                       st.one_of(st.integers(-3, 30), st.text(max_size=4),
                                 st.lists(st.integers(-1, 9), max_size=3),
                                 st.sampled_from(["mlp", "cnn", "resnet", "sgd", "adam",
                                                  "cosine", "step"]))))
def test_any_object_parses_or_is_refused_with_one_line(raw: dict[str, object]) -> None:
    for parse in (arch_of, optimizer_of, schedule_of):
        try:
            parse(raw)
        except InputError as exc:
            assert "\n" not in str(exc)
