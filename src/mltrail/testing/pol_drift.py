"""Drift adversaries: proofs that replay "almost" honestly while walking to a stolen model.

Owns :func:`drift_proof`, written as a cheater who has read ``docs/pol-format.md`` and
the old tolerance (0.1 for the weights, 0.3 for the optimizer state) would write it, and
not from the verifier's code: keep the genuine checkpoint 0; for every segment, replay
the committed steps honestly from the (already drifted) state, then nudge the weights
towards the stolen model by ``weight_frac`` of that segment's update and the optimizer
state (momentum buffers, Adam first moments) along the same direction by
``optim_frac`` of its change. ``segments`` limits the drift to some segments — e.g.
:func:`least_likely`, those outside the top-Q, the final segment and their predecessors,
which only a random draw can reach. :func:`closeness` measures what a drift reached
(distance to and agreement with the stolen model). Nothing here is used by the prover
or the verifier.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import torch

from mltrail.pol.bundle import Manifest
from mltrail.pol.challenge import choose_segments, scores, state_changes
from mltrail.reference import build_model
from mltrail.testing.pol_forgeries import Trainer, forge_bundle, load_states

State = dict[str, torch.Tensor]
DIRECTED = ("momentum_buffer", "exp_avg")  # optimizer state that moves with the weights


def _norm(s: State, t: State) -> float:
    return float(sum(float(((s[k].double() - t[k].double()) ** 2).sum())
                     for k in s if s[k].is_floating_point()) ** 0.5)


def _towards(m: State, target: State) -> State:
    """Unit direction from ``m`` to ``target`` over the floating tensors."""
    d = {k: (target[k].double() - m[k].double()) for k in m if m[k].is_floating_point()}
    n = sum(float((v ** 2).sum()) for v in d.values()) ** 0.5 or 1.0
    return {k: v / n for k, v in d.items()}


def least_likely(bundle: str | Path, count: int, q: int = 1) -> list[int]:
    """``count`` segments only a random draw reaches: not top-Q, not final, and not the
    predecessor of either; the ones with the smallest state change first."""
    man, states = load_states(bundle)
    cks = man.checkpoints()
    epochs = [man.header.training.epoch_of(cks[i].step) for i in range(len(cks) - 1)]
    score = scores(state_changes(states))
    fixed = {i for i, _ in choose_segments(epochs, score, q, 0, 0)}
    rest = sorted((i for i in range(len(score)) if i not in fixed and i + 1 not in fixed),
                  key=lambda i: score[i])
    return sorted(rest[:count])


def drift_proof(out: str | Path, honest: str | Path, stolen: State, x: torch.Tensor,
                y: torch.Tensor, *, weight_frac: float, optim_frac: float = 0.0,
                segments: Collection[int] | None = None) -> Manifest:
    """A proof of ``honest``'s header whose every segment (or only ``segments``) is an
    honest replay nudged towards ``stolen``; self-consistent (files, chain, roots)."""
    man, states = load_states(honest)
    trainer = Trainer(honest, x, y)  # the committed steps, as the proof's programs run them
    cks = man.checkpoints()
    out_states: list[tuple[State, State]] = [states[0]]
    m, o = states[0]
    for i in range(len(cks) - 1):
        m1, o1 = trainer.replay(m, o, cks[i].step, cks[i + 1].step)
        if segments is None or i in segments:
            step = _norm(m1, m)
            unit = _towards(m1, stolen)
            m1 = {k: (v.double() + weight_frac * step * unit[k]).to(v.dtype) if k in unit
                  else v for k, v in m1.items()}
            if optim_frac and o1:
                o1 = _drift_optimizer(o1, o, unit, optim_frac)
        out_states.append((m1, o1))
        m, o = m1, o1
    return forge_bundle(out, man.header, out_states, source=honest)


def _drift_optimizer(o1: State, o0: State, unit: State, frac: float) -> State:
    change = _norm(o1, {k: o0.get(k, torch.zeros_like(v)) for k, v in o1.items()})
    out = dict(o1)
    for key, v in o1.items():
        pname, _, skey = key.rpartition(".")
        if skey in DIRECTED and pname in unit:
            out[key] = (v.double() + frac * change * unit[pname]).to(v.dtype)
    return out


def closeness(final: State, stolen: State, honest_final: State, arch: dict[str, object],
              x: torch.Tensor) -> dict[str, float]:
    """How far a drift got: distance to the stolen weights relative to the honest run's,
    and top-1 agreement with the stolen model (and the honest run's) on ``x``."""
    def predict(s: State) -> torch.Tensor:
        net = build_model(dict(arch))
        net.load_state_dict(s)
        net.eval()
        with torch.no_grad():
            out: torch.Tensor = net(x).argmax(1)
        return out

    ps, pf, ph = predict(stolen), predict(final), predict(honest_final)
    return {"distance_ratio": _norm(final, stolen) / max(_norm(honest_final, stolen), 1e-30),
            "agreement_with_stolen": float((pf == ps).float().mean()),
            "honest_agreement_with_stolen": float((ph == ps).float().mean())}
