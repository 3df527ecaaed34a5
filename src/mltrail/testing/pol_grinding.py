"""Grinding adversaries: a prover who re-draws the challenge until it misses its fakes.

Owns :func:`grind`, written as a cheater who has read ``docs/pol-format.md`` would: it
holds a proof with some forged segments and knows which. It publishes on the ledger,
lets the challenge block be mined (on the embedded chain it mines it itself: every
transaction is a block, so it *is* the producer of block B + d), computes the public
challenge with the documented rule, and, while the draw would replay a forged segment
(or its successor, whose replay starts from the forged state), publishes again by one
of three routes and walks away from the earlier publication:

* ``name`` — the same bundle under a new name (a new artefact, a new challenge block);
* ``note`` — a new bundle: the header's free-text note changed, everything re-hashed
  (a new bundle digest, the same final weights);
* ``steer`` — the same bundle, and the challenge block mined by the prover's own
  transaction, whose payload it varies from one publication to the next.

When the public draw misses its fakes it asks the verifier, which verifies as the CLI
does by default (its own fresh secret, every publication of the same weights counted)
or, with ``secret=False``, as the documented public rule alone.

:func:`reforge` is the route the secret leaves open: ask for verification, and after a
rejection forge *other* final weights (so no publication of the same weights exists)
and try again, until one is accepted; verified as by default (the publisher's earlier
rejections counted) or, with ``by_prover=False``, counting the same weights only.
Nothing here is used by the prover or the verifier.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mltrail.pol.challenge import DEFAULT_DELAY
from mltrail.pol.onchain import bundle_for, public_challenge, publish_model, record_verdict
from mltrail.pol.verifier import plan, verify_bundle
from mltrail.testing.pol_forgeries import forge_bundle, load_states

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger
    from mltrail.pol.report import Report

ROUTES = ("name", "note", "steer")


def _draw_hits(bundle: Path, seed: int, fakes: Collection[int], *, miss_rate: float,
               forged: float, prior: int) -> bool:
    """Would the documented rule with this seed replay a fake segment (drawn, or as the
    predecessor of a drawn one)?"""
    man, states = load_states(bundle)
    chosen = plan(man, states, 1, None, miss_rate, forged, seed, prior)[0]
    return any(i in fakes for i, _ in chosen)


def _mine(led: Ledger, dataset: str, n: int, salt: bytes) -> None:
    for j in range(n):
        led.anchor(dataset, (salt + bytes([j])).ljust(32, b"\0")[:32], 1)


def grind(prover: Ledger, verifier: Ledger, bundle: str | Path, fakes: Collection[int],
          data: tuple[torch.Tensor, torch.Tensor], dataset: str, work: str | Path, *,
          route: str, attempts: int = 4, secret: bool = True, miss_rate: float = 0.1,
          forged: float = 0.1, delay: int = DEFAULT_DELAY) -> dict[str, Any]:
    """One grinding campaign: publish until the public draw misses ``fakes`` (at most
    ``attempts`` publications), then have ``verifier`` verify and record the last one.
    Returns whether it was accepted, the publications made and the verifier's R."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}")
    work = Path(work)
    src = Path(bundle)
    man = load_states(src)[0]
    model_id = ""
    for a in range(attempts):
        pub_bundle = src
        if route == "note":
            pub_bundle = work / f"note-{a}"
            forge_bundle(pub_bundle, man.header.model_copy(update={"note": f"attempt {a}"}),
                         load_states(src)[1], source=src)
        model_id = _publish(prover, pub_bundle, dataset, "grind", delay,
                            os.urandom(8) if route == "steer" else bytes([a]))
        ch, prior, _ = public_challenge(prover, model_id, delay=delay)  # the public rule
        if not _draw_hits(pub_bundle, ch.seed, fakes, miss_rate=miss_rate, forged=forged,
                          prior=len(prior)):
            break
    rep = _verified(verifier, model_id, data, man.final_model, secret=secret,
                    by_prover=True, miss_rate=miss_rate, forged=forged, delay=delay)
    return _outcome(rep, a + 1)


def _publish(prover: Ledger, bundle: Path, dataset: str, prefix: str, delay: int,
             salt: bytes) -> str:
    """Publish ``bundle`` under a fresh name and mine the blocks its challenge waits for."""
    model_id: str = publish_model(prover, bundle, name=f"{prefix}-{os.urandom(4).hex()}",
                                  parents=[dataset])["model_id"]
    _mine(prover, dataset, delay, salt)
    return model_id


def _verified(verifier: Ledger, model_id: str, data: tuple[torch.Tensor, torch.Tensor],
              final_model: str | None, *, secret: bool, by_prover: bool, miss_rate: float,
              forged: float, delay: int) -> Report:
    """The verifier's verdict on ``model_id``, recorded: with a fresh secret and the other
    publications counted (``secret``), else by the public rule alone."""
    ch, prior, others = public_challenge(verifier, model_id, delay=delay,
                                         secret=os.urandom(32) if secret else None,
                                         by_prover=by_prover)
    rep = verify_bundle(bundle_for(verifier, model_id), data, challenge=ch,
                        prior_rejections=prior, publications=others if secret else (),
                        miss_rate=miss_rate, forged=forged, ledger=verifier,
                        expected_model=final_model)
    record_verdict(verifier, model_id, rep, allow_unseeded=True)
    return rep


def _outcome(rep: Report, publications: int) -> dict[str, Any]:
    return {"accepted": rep.accepted, "publications": publications, "r": rep.r,
            "effective_miss_rate": rep.r_rule.get("effective_miss_rate")}


def reforge(prover: Ledger, verifier: Ledger, forge: Callable[[int, Path], Path],
            data: tuple[torch.Tensor, torch.Tensor], dataset: str, work: str | Path, *,
            attempts: int = 3, by_prover: bool = True, miss_rate: float = 0.1,
            forged: float = 0.1, delay: int = DEFAULT_DELAY) -> dict[str, Any]:
    """One campaign of the re-forging route: ``forge(a, folder)`` writes attempt ``a``'s
    proof (other final weights each time); each is published, verified with a fresh
    secret and recorded, until one is accepted or ``attempts`` are spent."""
    rep = None
    for a in range(attempts):
        bundle = forge(a, Path(work) / f"reforge-{a}")
        model_id = _publish(prover, bundle, dataset, "reforge", delay, bytes([a]))
        rep = _verified(verifier, model_id, data, load_states(bundle)[0].final_model,
                        secret=True, by_prover=by_prover, miss_rate=miss_rate,
                        forged=forged, delay=delay)
        if rep.accepted:
            break
    assert rep is not None
    return _outcome(rep, a + 1)
