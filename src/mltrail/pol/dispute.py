"""Ownership disputes: several claimants of one final weights digest.

Owns :func:`settle`: verify each claimant's proof, then decide by validity first and by
the earliest chronology anchored on the ledger by the claimant itself second, and
explain the decision line by line. A copied proof re-signed and re-anchored later
verifies, but its chronology starts after the original's, so it loses. This module
reads the ledger and never writes to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mltrail.errors import MltrailError
from mltrail.pol.report import Report
from mltrail.pol.verifier import verify_bundle

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger


@dataclass
class Claim:
    """One claimant: who, which artefact, which proof."""

    claimant: str  # address (or name) of the party claiming the model
    bundle: Path | None
    model_id: str | None = None
    registered_block: int | None = None
    report: Report | None = None
    first_anchor: int | None = None  # block of the claimant's own anchor of epoch 0
    anchored_epochs: int = 0
    problem: str | None = None
    label: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"claimant": self.claimant, "name": self.label, "model_id": self.model_id,
                "bundle": str(self.bundle) if self.bundle else None,
                "registered_block": self.registered_block,
                "verdict": self.report.verdict if self.report else "no proof",
                "reasons": self.report.reasons if self.report else [self.problem],
                "first_anchor_block": self.first_anchor,
                "anchored_epochs": self.anchored_epochs}


@dataclass
class Decision:
    model_digest: str
    winner: Claim | None
    claims: list[Claim]
    reasoning: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"model_digest": self.model_digest,
                "winner": self.winner.as_dict() if self.winner else None,
                "claims": [c.as_dict() for c in self.claims], "reasoning": self.reasoning}


def _chronology(claim: Claim, epochs: int) -> None:
    rep = claim.report
    if rep is None:
        return
    own = [a for a in rep.anchors if str(a.actor or "").lower() == claim.claimant.lower()]
    claim.anchored_epochs = len(own)
    first = [a for a in own if a.epoch == 0]
    if len(own) == epochs and first:
        claim.first_anchor = first[0].block


def _same(a: Claim, b: Claim) -> bool:
    return a.claimant.lower() == b.claimant.lower()


def settle(claims: list[Claim], data: tuple[torch.Tensor, torch.Tensor], model_digest: str,
           *, ledger: Ledger | None, q: int = 1, r: int = 1,
           threshold: float | None = None, names: dict[str, str] | None = None) -> Decision:
    """Verify every claim and pick the owner: valid proof, then earliest own anchors.

    ``names`` maps addresses to people's names for the reasoning text.
    """
    why: list[str] = [f"{len(claims)} claimant(s) of model {model_digest}"]
    for c in claims:
        c.label = (names or {}).get(c.claimant.lower(), c.claimant)
        if c.bundle is None:
            c.problem = c.problem or "no proof bundle"
            why.append(f"- {c.label}: no proof ({c.problem}) -> invalid")
            continue
        try:
            c.report = verify_bundle(c.bundle, data, q=q, r=r, threshold=threshold,
                                     expected_model=model_digest, ledger=ledger)
        except MltrailError as exc:
            c.problem = exc.message
            why.append(f"- {c.label}: proof unreadable ({exc.message}) -> invalid")
            continue
        from mltrail.pol.bundle import read_manifest

        _chronology(c, read_manifest(c.bundle).header.training.epochs)
        if not c.report.accepted:
            why.append(f"- {c.label}: proof REJECTED ({c.report.reasons[0]}) -> invalid")
        elif c.first_anchor is None:
            why.append(f"- {c.label}: proof accepted, but only {c.anchored_epochs} epoch "
                       "root(s) anchored by this claimant -> no chronology of its own")
        else:
            why.append(f"- {c.label}: proof accepted; its epoch roots were anchored by "
                       f"the claimant from block {c.first_anchor}")
    valid = [c for c in claims if c.report is not None and c.report.accepted]
    # a claimant may publish the same weights twice: its earliest registration stands for it
    dated = sorted((c for c in valid if c.first_anchor is not None),
                   key=lambda c: (c.first_anchor or 0, c.registered_block or 0))
    rivals = [c for c in dated if c.first_anchor == dated[0].first_anchor
              and not _same(c, dated[0])] if dated else []
    winner: Claim | None = None
    if not valid:
        why.append("no claimant holds a valid proof: nobody is shown to have trained it")
    elif dated:
        if rivals:
            why.append(f"tie: {dated[0].label} and {rivals[0].label} anchored in the "
                       f"same block {dated[0].first_anchor}; undecided")
        else:
            winner = dated[0]
            later = sorted({c.label for c in valid if not _same(c, winner)})
            why.append(f"{winner.label} wins: valid proof with the earliest anchored "
                       f"chronology (block {winner.first_anchor})"
                       + (f"; {', '.join(later)} anchored later or not at all, which a "
                          "copier cannot back-date" if later else ""))
    elif all(_same(c, valid[0]) for c in valid):
        winner = min(valid, key=lambda c: c.registered_block or 0)
        why.append(f"{winner.label} wins by validity alone (no claimant anchored its proof)")
    else:
        why.append("several valid proofs and no anchored chronology: undecided")
    return Decision(model_digest=model_digest, winner=winner, claims=claims, reasoning=why)


def claims_on_ledger(ledger: Ledger, model_id: str) -> tuple[str, list[Claim]]:
    """Every model artefact registered with the same weights digest as ``model_id``."""
    from mltrail.pol.onchain import bundle_for

    target = ledger.artefact(model_id)
    out: list[Claim] = []
    model_kind = ledger.lifecycle.bound_kind("pol")
    for art in ledger.find_by_digest(target.content_digest):
        if art.kind != model_kind:
            continue
        claim = Claim(claimant=art.owner, bundle=None, model_id=art.id,
                      registered_block=art.block)
        try:
            claim.bundle = bundle_for(ledger, art.id)
        except MltrailError as exc:
            claim.problem = exc.message
        out.append(claim)
    return target.content_digest, out
