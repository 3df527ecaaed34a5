"""A proof declaring a lower CPU capability than the verifier's replays exactly, in replay
processes started in that capability: declaring a foreign CPU earns no looser tolerance."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from mltrail.pol import environment
from mltrail.pol.environment import CPU_LEVELS

MINE = str(torch.backends.cpu.get_cpu_capability())
pytestmark = pytest.mark.skipif(MINE not in CPU_LEVELS[1:], reason="no lower x86 level here")
LOWER = CPU_LEVELS[CPU_LEVELS.index(MINE) - 1]

RECORD = textwrap.dedent("""
    import sys, torch
    from safetensors.torch import save_file
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import mltrail
    from mltrail.reference import load_digits_tensors

    torch.set_num_threads(1)
    d = load_digits_tensors()
    x, y = d.x_train[:256].contiguous(), d.y_train[:256].contiguous()
    save_file({"x": x, "y": y}, sys.argv[2])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    with mltrail.record_loop(sys.argv[1], model, opt, loader, loss="cross_entropy",
                             epochs=1, k=2, init_seed=0) as rec:
        for xb, yb in rec.loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            opt.step()
            rec.step()
""")


@pytest.fixture(scope="module")
def lower_proof(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("emulated")
    script = tmp / "record.py"
    script.write_text(RECORD)
    env = {**os.environ, "ATEN_CPU_CAPABILITY": LOWER.lower(), "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(script), str(tmp / "proof"), str(tmp / "d.st")],
                   check=True, env=env, cwd=tmp, capture_output=True)
    return tmp / "proof", tmp / "d.st"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_lower_declared_cpu_is_replayed_exactly(lower_proof: tuple[Path, Path],
                                                   workers: int) -> None:
    from mltrail import verify_bundle
    from mltrail.pol.parallel import workers as replay_workers

    proof, data = lower_proof
    with replay_workers(workers):
        rep = verify_bundle(proof, str(data), r=3, q=1, seed=1)
    assert rep.declared_env is not None and rep.declared_env["cpu_capability"] == LOWER
    assert rep.verdict == "accepted", [c.detail for c in rep.checks if not c.ok]
    assert rep.tolerance["basis"] == "same-environment" and rep.threshold == 0.0
    assert rep.replay_env["cpu_capability"] == LOWER
    assert rep.segments and all(s.error == 0.0 for s in rep.segments)


def test_without_emulation_the_same_replay_differs(lower_proof: tuple[Path, Path],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulation is what makes it exact: replayed in this process's own kernels the
    same segments differ (and the verifier, with no calibration, would refuse)."""
    from mltrail import verify_bundle
    from mltrail.errors import InputError

    proof, data = lower_proof
    monkeypatch.setattr(environment, "emulation", lambda *_a, **_k: None)
    with pytest.raises(InputError, match="no calibration for that pair"):
        verify_bundle(proof, str(data), r=3, q=1, seed=1)
    rep = verify_bundle(proof, str(data), r=3, q=1, seed=1, threshold=0.5)
    assert rep.tolerance["basis"] == "given" and rep.replay_env["cpu_capability"] == MINE
    assert max(s.error for s in rep.segments) > 0.0
