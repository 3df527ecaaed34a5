"""Cheaters who attack what is new in user-loop proofs: the prover's own code and state.

Owns adversaries outside the recipe the loop recorder was built against:

* :func:`swap_source` — the module a proof pins is replaced, after recording, by another
  file with the same import path (a changed loss); ``repin=True`` also rewrites the
  pinned digest and re-chains the manifest, so only the replay can notice;
* a loss with **hidden state** (:data:`HIDDEN_STATE_LOSS`): it counts its own calls and
  scales the loss up after a secret step — state that no checkpoint holds, so a replay
  that starts mid-run computes another function;
* :func:`edit_scheduler_state` — the scheduler state of one checkpoint edited (its last
  learning rates scaled), re-chained;
* :func:`lr_lie` — one segment trained at a secretly higher learning rate, every file
  (scheduler states included) what an honest run would write.

Each writes its user module into a folder of its own (a fresh import name per seed, so
the hidden counter starts at zero). Nothing in the prover or verifier uses this module.
"""

from __future__ import annotations

import json
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from mltrail.pol.bundle import Manifest, read_manifest, write_manifest
from mltrail.pol.loop import record_loop
from mltrail.pol.loopspec import CodeRef, LoopSpec
from mltrail.provenance.digest import canonical_json, digest_bytes, digest_file, digest_json
from mltrail.testing.pol_forgeries import forge_bundle, load_states
from mltrail.testing.pol_userloops import tabular_data

HONEST_LOSS = '''
import torch
from torch import nn

def make_model():
    return nn.Sequential(nn.Linear(10, 16), nn.Tanh(), nn.Linear(16, 3))

def loss(logits, target):
    return nn.functional.cross_entropy(logits, target)
'''

SCALED_LOSS = HONEST_LOSS.replace("return nn.functional.cross_entropy(logits, target)",
                                  "return {scale} * nn.functional.cross_entropy(logits, target)")

HIDDEN_STATE_LOSS = HONEST_LOSS.replace(
    "def loss(logits, target):\n    return nn.functional.cross_entropy(logits, target)",
    "_CALLS = [0]\n\ndef loss(logits, target):\n    _CALLS[0] += 1\n"
    "    boost = 3.0 if _CALLS[0] > {secret} else 1.0\n"
    "    return boost * nn.functional.cross_entropy(logits, target)")


def write_module(folder: Path, name: str, source: str) -> str:
    """Write ``folder/name.py``; returns the module name (importable with ``folder`` on
    the path)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(source)
    return name


def record_user_module(out: Path, folder: Path, module: str, *, seed: int, epochs: int = 3,
                       k: int = 1, lr_boost: dict[int, float] | None = None, n: int = 64,
                       trusted_code: bool = True) -> Path:
    """Record the tabular loop with ``module``'s model and loss (SGD + momentum, a step
    schedule); ``lr_boost`` multiplies the rate of given steps (a lie the files hide).
    ``trusted_code=False`` exports the model and the loss instead of pinning them."""
    import importlib

    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    mod = importlib.import_module(module)
    torch.manual_seed(seed)
    model = mod.make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.8)
    loader = DataLoader(tabular_data(n=n, seed=seed), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    with record_loop(out, model, opt, loader, model_factory=f"{module}:make_model",
                     loss=f"{module}:loss" if trusted_code else mod.loss, scheduler=sched,
                     epochs=epochs, k=k, init_seed=seed, code_paths=[str(folder)],
                     trusted_code=trusted_code) as rec:
        for _ in range(epochs):
            for xb, yb in rec.loader:
                boost = (lr_boost or {}).get(rec.steps_done, 1.0)
                for g in opt.param_groups:
                    g["lr"] *= boost
                opt.zero_grad()
                mod.loss(model(xb), yb).backward()
                opt.step()
                for g in opt.param_groups:
                    g["lr"] /= boost
                sched.step()
                rec.step()
    return out


def honest(out: Path, folder: Path, seed: int, n: int = 64) -> Path:
    """An honest proof of the tabular loop with its own user module."""
    return record_user_module(out, folder, write_module(folder, f"honest_{seed}", HONEST_LOSS),
                              seed=seed, n=n)


def swap_source(out: Path, folder: Path, seed: int, *, repin: bool, n: int = 64
                ) -> tuple[Path, Path]:
    """Record honestly, then replace the module by a variant with the same import path
    (the loss scaled by a random factor). Returns the bundle and the code folder the
    verifier is handed. ``repin`` rewrites the pinned digest and re-chains."""
    name = f"swapped_{seed}"
    record_user_module(out, folder, write_module(folder, name, HONEST_LOSS), seed=seed, n=n)
    scale = random.Random(seed).choice([0.5, 0.7, 1.5, 2.0])
    write_module(folder, name, SCALED_LOSS.format(scale=scale))
    if repin:
        man = read_manifest(out)
        spec = man.header.training
        assert isinstance(spec, LoopSpec) and isinstance(spec.model, CodeRef) and \
            isinstance(spec.loss, CodeRef)
        new = digest_file(folder / f"{name}.py")
        spec = spec.model_copy(update={
            "model": spec.model.model_copy(update={"source": new}),
            "loss": spec.loss.model_copy(update={"source": new})})
        header = man.header.model_copy(update={"training": spec})
        tmp = out.with_name(out.name + ".repinned")
        forge_bundle(tmp, header, load_states(out)[1], source=out)
        shutil.rmtree(out)
        tmp.rename(out)
    return out, folder


def hidden_state(out: Path, folder: Path, seed: int, epochs: int = 3, n: int = 64) -> Path:
    """A loss that changes after a secret call count: honest files, unreplayable code."""
    steps = epochs * (n // 16)
    secret = random.Random(seed).randrange(steps // 4, 3 * steps // 4)
    name = write_module(folder, f"hidden_{seed}", HIDDEN_STATE_LOSS.format(secret=secret))
    return record_user_module(out, folder, name, seed=seed, epochs=epochs, n=n)


def edit_scheduler_state(out: Path, honest_bundle: Path, seed: int) -> Manifest:
    """Scale the recorded learning rates in one checkpoint's scheduler state, re-chained
    (a prover hiding a schedule it did not declare)."""
    man = read_manifest(honest_bundle)
    shutil.copytree(honest_bundle, out)
    cks = [c for c in man.checkpoints() if "sched" in c.files]
    c = cks[random.Random(seed).randrange(1, len(cks))]
    state: dict[str, Any] = json.loads((out / c.files["sched"]).read_bytes())
    state["_last_lr"] = [v * 2.0 for v in state.get("_last_lr", [])]
    raw = canonical_json(state)
    (out / c.files["sched"]).write_bytes(raw)
    c.digests["sched"] = digest_bytes(raw)
    fixed = man.model_copy(update={"header_digest": digest_json(man.header.model_dump())})
    return _rechain(out, fixed)


def _rechain(folder: Path, man: Manifest) -> Manifest:
    from mltrail.pol.bundle import Anchor, epoch_groups, epoch_root, link_of

    prev = man.header_digest
    for rec in man.records:
        rec.prev = prev
        rec.link = link_of(rec)
        prev = rec.link
    man.anchors = [Anchor(epoch=e, root=epoch_root(g).hex(), count=len(g))
                   for e, g in enumerate(epoch_groups(man.records))]
    write_manifest(folder, man)
    return man


def lr_lie(out: Path, folder: Path, seed: int, boost: float = 3.0, n: int = 64
           ) -> tuple[Path, int]:
    """One step trained at ``boost`` × the declared rate; returns the bundle and the step."""
    steps = 3 * (n // 16)
    step = random.Random(seed).randrange(1, steps - 1)
    name = write_module(folder, f"lie_{seed}_{int(boost * 100)}", HONEST_LOSS)
    return record_user_module(out, folder, name, seed=seed, lr_boost={step: boost}, n=n), step
