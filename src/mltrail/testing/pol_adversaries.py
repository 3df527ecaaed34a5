"""Proof-of-Learning adversaries written as a cheater who has read ``docs/pol-format.md``.

Owns the attacks that work *outside* the recipes of :mod:`mltrail.testing.pol_forgeries`
(issue 7): an honest proof with one segment whose *input optimizer state* is forged so
that an honest replay of it lands on weights the cheater wants; small-update fakes at a
few segments; one silently forged segment (for the detection-rate bench); a proof that
declares fewer samples than the data it commits; and init laundering (a fresh-looking
init reordered to match a stolen model). Nothing here is used by the prover or verifier.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mltrail.pol.bundle import Manifest
from mltrail.reference import build_model, init_bounds, init_weights
from mltrail.testing.pol_forgeries import Trainer, _source, forge_bundle, load_states

State = dict[str, torch.Tensor]


def _clone(s: State) -> State:
    return {k: v.detach().clone() for k, v in s.items()}


def _continue(honest: str | Path, start: tuple[State, State], first: int, x: torch.Tensor,
              y: torch.Tensor) -> list[tuple[State, State]]:
    """Honest checkpoints after checkpoint ``first`` when training resumes from ``start``."""
    tr = Trainer(honest, x, y)
    cks = tr.man.checkpoints()
    out, state = [], start
    for i in range(first, len(cks) - 1):
        state = tr.replay(*state, cks[i].step, cks[i + 1].step)
        out.append(state)
    return out


def poisoned_target(tr: Trainer, w: State, x: torch.Tensor, y: torch.Tensor,
                    steps: int = 30) -> State:
    """Weights the cheater wants: ``w`` trained on shifted labels for ``steps`` steps."""
    model = tr.model(w)
    opt = torch.optim.SGD(model.parameters(), lr=tr.lr_at(0))
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (tr.spec.batch_size,), generator=gen)
        opt.zero_grad()
        tr.loss(model(x[idx]), (y[idx] + 1) % 10).backward()
        opt.step()
    return _clone(model.state_dict())


def forged_optimizer_segment(out: str | Path, honest: str | Path, x: torch.Tensor,
                             y: torch.Tensor, j: int, target: State | None = None
                             ) -> Manifest:
    """Honest up to checkpoint ``j``; there the weights stay honest but the momentum
    buffer is solved so that an honest replay of segment ``j`` (one SGD step, k = 1)
    lands exactly on ``target`` (default: a poisoned-label model); honest training
    resumes from there. Only the link between segments ``j − 1`` and ``j`` is false."""
    tr = Trainer(honest, x, y)
    man, states = load_states(honest)
    opts = tr.spec.optimizer
    mu = float(opts.groups[0].options.get("momentum", 0.0))
    if man.header.k != 1 or opts.name != "SGD" or mu == 0.0 or j < 1:
        raise ValueError("built for SGD with momentum, k = 1 and j >= 1")
    w = states[j][0]
    t = target if target is not None else poisoned_target(tr, w, x, y)
    model = tr.model(w)
    step = man.checkpoints()[j].step
    idx = torch.tensor(tr.batches[step], dtype=torch.int64)
    tr.loss(model(x[idx]), y[idx]).backward()
    lr = tr.lr_at(step)
    want, buf = {}, {}
    for name, p in model.named_parameters():
        assert p.grad is not None
        want[name] = (w[name] - t[name]) / lr  # the new buffer the step must use
        buf[name] = (want[name] - p.grad) / mu
    forged_in = (w, {f"{n}.momentum_buffer": v for n, v in buf.items()})
    after = (t, {f"{n}.momentum_buffer": v for n, v in want.items()})
    tail = _continue(honest, after, j + 1, x, y)
    new = states[:j] + [forged_in, after] + tail
    header = man.header.model_copy(update={"note": "forged: optimizer-state segment"})
    return forge_bundle(out, header, new, source=honest)


def small_update_fakes(out: str | Path, honest: str | Path, count: int, seed: int = 0
                       ) -> tuple[Manifest, list[int]]:
    """Replace ``count`` checkpoints in segments with small updates by the midpoint of
    their neighbours (weights and optimizer state), as a cheater skipping work where it
    shows least. Returns the manifest and the indices of the faked checkpoints."""
    man, states = load_states(honest)
    n = len(states)
    sizes = [float(sum((states[i + 1][0][k] - states[i][0][k]).float().norm() ** 2
                       for k in states[i][0]) ** 0.5) for i in range(n - 1)]
    median = sorted(sizes)[len(sizes) // 2]
    cands = [i + 1 for i in range(n - 3) if sizes[i] <= median]
    rng = random.Random(seed)
    picked: list[int] = []
    for c in rng.sample(cands, len(cands)):
        if all(abs(c - p) > 1 for p in picked):
            picked.append(c)
        if len(picked) == count:
            break
    if len(picked) < count:
        raise ValueError(f"only {len(picked)} non-adjacent small segments to fake")
    for c in picked:
        a, b = states[c - 1], states[c + 1]
        states[c] = ({k: (a[0][k] + b[0][k]) / 2 if a[0][k].is_floating_point() else b[0][k]
                      for k in a[0]},
                     {k: (a[1].get(k, torch.zeros_like(v)) + v) / 2 for k, v in b[1].items()})
    return forge_bundle(out, man.header, states, source=_source(man, honest)), sorted(picked)


def forged_segment(out: str | Path, honest: str | Path, x: torch.Tensor, y: torch.Tensor,
                   j: int, scale: float = 0.5) -> Manifest:
    """Exactly one non-reproducing segment ``j``: its end state is nudged by ``scale`` ×
    its own update in a random direction, then training resumes honestly from there."""
    man, states = load_states(honest)
    m0, m1 = states[j][0], states[j + 1][0]
    gen = torch.Generator().manual_seed(j)
    nudged = {}
    for k, v in m1.items():
        if v.is_floating_point():
            d = float((v - m0[k]).norm()) or 1e-3
            noise = torch.randn(v.shape, generator=gen)
            nudged[k] = v + scale * d * noise / (float(noise.norm()) or 1.0)
        else:
            nudged[k] = v.clone()
    end = (nudged, states[j + 1][1])
    tail = _continue(honest, end, j + 1, x, y)
    return forge_bundle(out, man.header, states[:j + 1] + [end] + tail, source=honest)


def declared_subset(out: str | Path, x: torch.Tensor, y: torch.Tensor, n: int,
                    **run: Any) -> Manifest:
    """Train honestly (``pol train``'s loop) on the first ``n`` samples but commit the
    digest of all the data, so the proof looks like training on the full set; the
    recorded batches, the declared shuffle and the steps per epoch stay the subset's."""
    from mltrail.pol.loopdata import ArrayDataset, commit
    from mltrail.pol.reftask import record_reference

    tmp = Path(out).with_name(Path(out).name + ".subset")
    record_reference(tmp, x[:n], y[:n], **run)
    man, states = load_states(tmp)
    full = commit(ArrayDataset.of({"x": x, "y": y}))[0]
    header = man.header.model_copy(update={"training": man.header.training.model_copy(
        update={"data": full})})
    return forge_bundle(out, header, states, source=tmp)


def launder_init(stolen: State, arch: dict[str, Any], scheme: str, seed: int,
                 copy_small: bool = True) -> State:
    """A fresh draw from the init distribution, each tensor's values reordered to follow
    the rank order of the stolen model's; tensors under 20 values copied outright."""
    model = init_weights(build_model(arch), scheme, seed)
    fresh = _clone(model.state_dict())
    out: State = {}
    for name, v in fresh.items():
        s = stolen[name]
        if not v.is_floating_point() or name not in init_bounds(model, scheme):
            out[name] = v
        elif v.numel() < 20 and copy_small:
            out[name] = s.clone()
        else:
            vals = v.reshape(-1).sort().values
            ranks = s.reshape(-1).argsort().argsort()
            out[name] = vals[ranks].reshape(v.shape)
    return out


def laundered_proof(out: str | Path, stolen_bundle: str | Path, x: torch.Tensor,
                    y: torch.Tensor, *, arch: dict[str, Any], copy_small: bool = True,
                    seed: int = 99, claim_seed: bool = False) -> Manifest:
    """Record an honest run (``pol train``'s loop) of the stolen proof's spec that starts
    from a laundered init: with no init seed committed, or (``claim_seed``) claiming the
    stolen proof's seed for it."""
    from torch.utils.data import DataLoader

    from mltrail.pol.loop import record_loop
    from mltrail.pol.loopdata import ArrayDataset
    from mltrail.reference import pinned_threads

    man, states = load_states(stolen_bundle)
    spec = man.header.training
    model = build_model(arch)
    model.load_state_dict(launder_init(states[-1][0], arch, "uniform_fan_in", seed,
                                       copy_small))
    g = spec.optimizer.groups[0].options  # type: ignore[union-attr]
    opt = torch.optim.SGD(model.parameters(), lr=float(g["lr"]),
                          momentum=float(g.get("momentum", 0.0)), foreach=False)
    loader = DataLoader(ArrayDataset.of({"x": x, "y": y}), batch_size=spec.batch_size,
                        shuffle=True, generator=torch.Generator().manual_seed(seed))
    rec_out = Path(out).with_name(Path(out).name + ".unseeded") if claim_seed else Path(out)
    with pinned_threads(1), record_loop(rec_out, model, opt, loader, loss="cross_entropy",
                                        epochs=spec.epochs, k=man.header.k,
                                        prover="mallory") as rec:
        for _ in range(spec.epochs):
            for xb, yb in rec.loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb), yb).backward()
                opt.step()
                rec.step()
    if not claim_seed:
        return rec.manifest
    own, own_states = load_states(rec_out)  # the stolen proof's init commitment, re-chained
    return forge_bundle(out, own.header.model_copy(update={"init": man.header.init}),
                        own_states, source=rec_out)
