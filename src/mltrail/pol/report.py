"""The verifier's report: one verdict, the checks behind it, JSON and HTML forms.

Owns :class:`Report` (and its parts) and how it is written to disk (atomically). It
computes nothing about a proof; :mod:`mltrail.pol.verifier` fills it in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mltrail._fs import atomic_write
from mltrail.provenance.digest import digest_bytes


class Check(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    ok: bool
    detail: str


class Segment(BaseModel):
    """One replayed segment: checkpoint ``index`` -> ``index + 1``."""

    model_config = ConfigDict(extra="forbid")

    index: int
    epoch: int
    start_step: int
    end_step: int
    chosen: Literal["top-q", "random", "final", "predecessor"]
    update_norm: float  # change of the whole state, each part scaled by its median
    error: float  # ||W' - W_next|| / ||W_next - W||
    optim_error: float | None = None  # same for the optimizer state
    cosine: float | None = None  # cos(W' - W, W_next - W)
    ok: bool


class CurvePoint(BaseModel):
    """Loss and accuracy of one checkpoint on the training data, and who computed them:
    the verifier (from the checkpoint's weights) or the prover (a claim, not checked)."""

    model_config = ConfigDict(extra="forbid")

    step: int
    epoch: int
    loss: float | None = None
    accuracy: float | None = None
    source: Literal["verifier", "prover"] = "verifier"


class AnchorEvent(BaseModel):
    """An epoch root found on the ledger: block, time and actor from the chain."""

    model_config = ConfigDict(extra="forbid")

    epoch: int
    artefact_id: str
    block: int
    timestamp: int | None = None
    actor: str | None = None
    tx_hash: str | None = None
    root: str


class Challenge(BaseModel):
    """Where the verifier's random seed came from (revealed in the report)."""

    model_config = ConfigDict(extra="forbid")

    seed: int
    source: Literal["ledger", "verifier"]
    model_id: str | None = None
    bundle_digest: str | None = None
    block: int | None = None
    block_hash: str | None = None
    secret: str | None = None  # hex; revealed after the verdict so anyone can recheck

    def as_dict(self) -> dict[str, object]:
        return self.model_dump()


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["mltrail-pol-report/1"] = "mltrail-pol-report/1"
    verdict: Literal["accepted", "rejected"]
    reasons: list[str] = Field(default_factory=list)
    bundle: str
    header_digest: str | None = None
    chain_head: str | None = None
    final_model: str | None = None
    data_digest: str | None = None
    threshold: float
    optim_threshold: float | None = None
    q: int
    r: int
    verifier_seed: int
    challenge: Challenge | None = None  # where the seed came from (recheckable)
    r_rule: dict[str, float | int] = Field(default_factory=dict)  # how R was chosen
    prior_rejections: list[str] = Field(default_factory=list)  # rejected before: the same
    # weights, or any model of the same publisher
    init_origin: Literal["ledger", "seed", "unseeded"] | None = None
    trusted_code: bool = False  # a loop proof replayed by running the prover's Python
    overrides: list[str] = Field(default_factory=list)  # named overrides of the verifier
    checks: list[Check] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    anchors: list[AnchorEvent] = Field(default_factory=list)
    replay_seconds: float = 0.0
    total_seconds: float = 0.0
    torch_threads: int = 1
    device: str = "cpu"
    tolerance: dict[str, Any] | None = None  # basis and reason of the thresholds
    declared_env: dict[str, Any] | None = None  # the prover's environment (header.env)
    replay_env: dict[str, Any] | None = None  # the environment the replay ran in
    publications: list[str] = Field(default_factory=list)  # same weights, published before
    curve: list[CurvePoint] = Field(default_factory=list)  # per checkpoint, for the plot

    @property
    def accepted(self) -> bool:
        return self.verdict == "accepted"

    @property
    def max_error(self) -> float:
        return max((s.error for s in self.segments), default=0.0)

    def to_json(self) -> bytes:
        return (json.dumps(self.model_dump(), indent=2, sort_keys=True) + "\n").encode()

    def run(self, *steps: Callable[[], Check]) -> bool:
        """Run checks in order, recording each; stop at the first failure (its reason
        recorded). True when all passed."""
        for step in steps:
            c = step()
            self.checks.append(c)
            if not c.ok:
                self.reasons.append(f"{c.name}: {c.detail}")
                return False
        return True

    def replay_check(self, ok_detail: str, error_bound: float | None = None) -> Check:
        """The ``replay`` check over :attr:`segments`: ``ok_detail`` when every segment
        reproduced, else the first three that did not (with the optimizer-state error of
        those whose weight error is within ``error_bound``; of all when None)."""
        bad = [s for s in self.segments if not s.ok]
        if not bad:
            return Check(name="replay", ok=bool(self.segments), detail=ok_detail)
        shown = ", ".join(
            f"#{s.index} (steps {s.start_step}-{s.end_step}, {s.chosen}) error {s.error:.3g}"
            + (f", optimizer state error {s.optim_error:.3g}"
               if s.optim_error is not None and (error_bound is None or s.error <= error_bound)
               else "") for s in bad[:3])
        return Check(name="replay", ok=False,
                     detail=f"{len(bad)} of {len(self.segments)} segments do not reproduce: "
                     + shown + (", …" if len(bad) > 3 else ""))

    def digest(self) -> str:
        """Digest of the JSON report (the evidence recorded on the ledger)."""
        return digest_bytes(self.to_json())

    @property
    def qualifier(self) -> str | None:
        """``unseeded init`` / ``init seed not from the ledger`` for an accepted proof whose
        initial weights the prover could have chosen or dated freely."""
        if not self.accepted:
            return None
        init = {"unseeded": "unseeded init", "seed": "init seed not from the ledger"
                }.get(self.init_origin or "")
        if self.trusted_code:
            return "trusted code: the prover's Python ran" + (f"; {init}" if init else "")
        return init

    def summary(self) -> str:
        head = f"proof {self.verdict.upper()}"
        if self.qualifier:
            head += f" ({self.qualifier})"
        if self.segments:
            head += (f": {len(self.segments)} segments replayed, max error "
                     f"{self.max_error:.3g} (threshold {self.threshold:.3g}"
                     + (f", {self.tolerance['basis']}" if self.tolerance else "") + ")")
        return head if self.accepted else head + "\n  " + "\n  ".join(self.reasons)

    def to_html(self) -> str:
        """The report as one standalone HTML page (the dashboard's renderer)."""
        from mltrail.render.reports import pol_html

        return pol_html(self.model_dump())

    def save(self, json_path: str | Path | None = None, html_path: str | Path | None = None
             ) -> None:
        if json_path is not None:
            atomic_write(Path(json_path), self.to_json())
        if html_path is not None:
            atomic_write(Path(html_path), self.to_html().encode())
