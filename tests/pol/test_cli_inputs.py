"""Issue 18 through the CLI against the ledger: the verifier's own input errors are exit 2
and leave the model's state unchanged; a prover's second honest run is accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def project(tmp_path: Path, cli) -> Path:
    assert cli("init", cwd=tmp_path).code == 0
    for name, roles in {"alice": ["data_steward", "model_developer"],
                        "victor": ["verifier"]}.items():
        assert cli("id", "create", name, cwd=tmp_path).code == 0
        for role in roles:
            assert cli("roles", "grant", name, role, cwd=tmp_path).code == 0
    return tmp_path


def _lower_cpu_level() -> str | None:
    import torch

    from mltrail.pol.environment import CPU_LEVELS

    mine = str(torch.backends.cpu.get_cpu_capability())
    at = CPU_LEVELS.index(mine) if mine in CPU_LEVELS else 0
    return CPU_LEVELS[at - 1].lower() if at > 0 else None


def _installed(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed ``mltrail`` command, in a process of its own (torch reads the CPU
    level once, at its first operation)."""
    exe = Path(sys.executable).with_name("mltrail")
    return subprocess.run([str(exe), *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600, check=False)


def _state(cli, project: Path, model: str) -> str:
    return str(cli("show", model, "--json", cwd=project).json()["state"])  # type: ignore[index]


def test_input_errors_are_exit_2_and_a_second_honest_run_is_verified(project: Path,
                                                                      cli) -> None:
    args = ("--arch", "mlp", "--epochs", "1", "--k", "43", "--json")
    first = cli("--as", "alice", "pol", "train", "one", *args, cwd=project)
    assert first.code == 0, first.err
    # the same seed, data and architecture again: a second run with its own start anchor
    second = cli("--as", "alice", "pol", "train", "two", *args, cwd=project)
    assert second.code == 0, second.err
    m1, m2 = first.json()["model_id"], second.json()["model_id"]  # type: ignore[index]
    assert cli("pol", "data", str(project / "d.safetensors"), cwd=project).code == 0
    from safetensors.torch import load_file, save_file

    t = load_file(project / "d.safetensors")
    t["y"][:3] = 0
    save_file(t, project / "other.safetensors")
    # wrong --data, a calibration file that is a folder, an unknown device: exit 2,
    # one line, nothing recorded
    for extra in (("--data", str(project / "other.safetensors")),
                  ("--calibration", str(project)), ("--device", "tpu9")):
        res = cli("--as", "victor", "pol", "verify", "--model", m1, *extra, cwd=project)
        assert res.code == 2, (extra, res.err)
        assert "Traceback" not in res.err and len(res.err.strip().splitlines()) <= 2
        assert _state(cli, project, m1) == "trained"
    # the proof's blob unreachable (gone from the store): exit 2, nothing recorded
    bundle = first.json()["bundle_digest"].split(":")[1]  # type: ignore[index]
    blob = project / ".mltrail" / "objects" / bundle[:2] / bundle[2:]
    assert blob.is_file()
    blob.rename(project / "away")
    import shutil

    shutil.rmtree(project / ".mltrail" / "pol" / bundle, ignore_errors=True)  # the unpacked copy
    res = cli("--as", "victor", "pol", "verify", "--model", m1, "--data", "digits",
              cwd=project)
    assert res.code == 2 and _state(cli, project, m1) == "trained", res.err
    blob.parent.mkdir(parents=True, exist_ok=True)
    (project / "away").rename(blob)
    # a verifier that lacks the declared environment (a lower CPU level than the proof's:
    # nothing to emulate) and has no calibration for the pair: exit 2, nothing recorded
    lower = _lower_cpu_level()
    if lower is not None:
        res = _installed(project, "--as", "victor", "pol", "verify", "--model", m1,
                         env={"ATEN_CPU_CAPABILITY": lower})
        assert res.returncode == 2 and "no calibration for that pair" in res.stderr, res.stderr
        assert "Traceback" not in res.stderr and _state(cli, project, m1) == "trained"
    for model in (m1, m2):
        ok = cli("--as", "victor", "pol", "verify", "--model", model, "--json", cwd=project)
        assert ok.code == 0, ok.err
        assert ok.json()["init_origin"] == "ledger"  # type: ignore[index]
        assert _state(cli, project, model) == "verified"
    # a copy of the proof with its environment stripped (anyone can), published: no bound
    # is known to hold for it, so it is refused (exit 2), not held to the old 0.1
    from mltrail.testing.pol_forgeries import forge_bundle, load_states

    man, states = load_states(project / ".mltrail" / "pol" / bundle)
    forge_bundle(project / "bare", man.header.model_copy(update={"env": None}), states,
                 source=project / ".mltrail" / "pol" / bundle)
    res = cli("--as", "alice", "pol", "publish", str(project / "bare"), "--name", "bare",
              "--parent", first.json()["dataset_id"], "--json", cwd=project)  # type: ignore[index]
    assert res.code == 0, res.err
    bare = res.json()["model_id"]  # type: ignore[index]
    (project / "more.csv").write_text("x\n1\n")  # mines the block the challenge waits for
    assert cli("--as", "alice", "register", str(project / "more.csv"), "--kind", "dataset",
               cwd=project).code == 0
    res = cli("--as", "victor", "pol", "verify", "--model", bare, cwd=project)
    assert res.code == 2 and "declares no environment" in res.err, res.err
    assert _state(cli, project, bare) == "trained"


def test_fuzz_exit_3_bugs_are_input_errors(tmp_path: Path, cli) -> None:
    res = cli("pol", "data", str(tmp_path), cwd=tmp_path)  # onto a folder
    assert res.code == 2 and "is a folder" in res.err
    res = cli("pol", "calibrate", "--quick", "--device", "tpu9", cwd=tmp_path)
    assert res.code == 2 and "unknown device" in res.err
