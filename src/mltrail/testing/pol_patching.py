"""Cheaters whose Python patches the replay (issue 18's third attack), outside the recipe.

A forged proof — honest checkpoints, then a **poisoned final model** (the weights of a
model the prover did not train), re-chained — comes with code that, once it runs in a
process that replays, replaces the replay with "return the bundle's next checkpoint" (so
every replayed segment shows error 0):

* :func:`patched_module` — the patch is in the pinned model/loss module itself, exactly
  the source the proof pins;
* :func:`patched_folder` — the pinned module is honest; the ``--code`` folder also holds
  ``sitecustomize.py``, ``usercustomize.py``, a ``.pth`` file and packages named
  ``torch`` and ``safetensors``, each installing the same patch.

The patch (:data:`PATCH`) acts where the trusted-code replay runs
(``python -I -m mltrail.pol.loopreplay``: its ``__main__``) and on an imported
:mod:`mltrail.pol.loopreplay` in any process started as the ``mltrail`` command; it
stays inert in the process that records, as a prover would make it. Each writes a
canary file when the patch is installed, so a test can tell "never ran" from "ran and
was caught". Nothing in the prover or verifier uses this module.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from mltrail.pol.bundle import read_manifest
from mltrail.testing.pol_forgeries import forge_bundle, load_states
from mltrail.testing.pol_loop_adversaries import HONEST_LOSS, record_user_module, write_module

PATCH = '''
def _mltrail_patch(canary):
    import os, sys
    targets = []
    main = sys.modules.get("__main__")
    if main is not None and hasattr(main, "replay_segment") and hasattr(main, "read_bundle"):
        targets.append(main)
    lr = sys.modules.get("mltrail.pol.loopreplay")
    if lr is not None and os.path.basename(sys.argv[0] or "") == "mltrail":
        targets.append(lr)
    for m in targets:
        if getattr(m, "_patched", False):
            continue
        real, seen = m.read_bundle, {}

        def read_bundle(folder, spec, man, code, max_params, _real=real, _seen=seen):
            out = _real(folder, spec, man, code, max_params)
            _seen["states"] = out[0]
            _seen["steps"] = [c.step for c in man.checkpoints()]
            return out

        def replay_segment(spec, code, dataset, m0, o0, batches, rng, start, end, *a,
                           _seen=seen, **k):
            return _seen["states"][_seen["steps"].index(end)]

        m.read_bundle, m.replay_segment, m._patched = read_bundle, replay_segment, True
        open(canary, "w").write("patched")


_mltrail_patch(CANARY)
'''


def _patch(canary: Path) -> str:
    return PATCH.replace("CANARY", repr(str(canary)))


def _poison(out: Path, honest: Path, seed: int) -> Path:
    """``honest`` with its final model replaced by other weights, re-chained."""
    man, states = load_states(honest)
    gen = torch.Generator().manual_seed(10_000 + seed)
    final, optim = states[-1]
    stolen = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) * v.std()
              if v.is_floating_point() and v.numel() > 1 else v.clone()
              for k, v in final.items()}
    forge_bundle(out, man.header, [*states[:-1], (stolen, optim)], source=honest)
    return out


def patched_module(out: Path, folder: Path, seed: int, canary: Path, *,
                   trusted_code: bool, n: int = 64) -> Path:
    """A proof pinning a module with :data:`PATCH` in it, its final model poisoned."""
    name = write_module(folder, f"patching_{seed}_{int(trusted_code)}",
                        HONEST_LOSS + _patch(canary))
    honest = out.with_name(out.name + ".honest")
    record_user_module(honest, folder, name, seed=seed, n=n, trusted_code=trusted_code)
    return _poison(out, honest, seed)


def patched_folder(out: Path, folder: Path, seed: int, canary: Path, *,
                   trusted_code: bool, n: int = 64) -> tuple[Path, Path]:
    """An honest module, a poisoned final model, and a ``--code`` folder (returned with
    the bundle) whose start-up hooks and shadowing packages install :data:`PATCH`."""
    clean = folder.with_name(folder.name + ".clean")
    name = write_module(clean, f"plain_{seed}_{int(trusted_code)}", HONEST_LOSS)
    honest = out.with_name(out.name + ".honest")
    record_user_module(honest, clean, name, seed=seed, n=n, trusted_code=trusted_code)
    shutil.copytree(clean, folder, dirs_exist_ok=True)
    code = _patch(canary)
    for hook in ("sitecustomize.py", "usercustomize.py"):
        (folder / hook).write_text(code)
    (folder / "zz_patch.pth").write_text("import sys; exec(" + repr(code) + ")\n")
    for pkg in ("torch", "safetensors"):
        (folder / pkg).mkdir(exist_ok=True)
        (folder / pkg / "__init__.py").write_text(code)
    assert read_manifest(honest).header.training is not None
    return _poison(out, honest, seed), folder
