"""The one adapter between the oracle network and the audit library.

:func:`measure` audits the service at the endpoint of its ledger claims (given by the
caller, who loaded them; never an endpoint a requester named) and reduces the report
to the five metrics the market knows (agreement with the reference, accuracy,
robustness, p99 latency, availability) and a verdict. Two probe sets: the round's
*shared* probes (seeded by the round's request block, the same for every oracle, so
honest oracles measure the same agreement and accuracy: these values go on chain) and
the oracle's *private* probes (:mod:`mltrail.oracle.probes`, seeded by its secret
salt, committed by digest): the verdict is ``pass`` only if both audits pass, so a
provider that recognises the public shared probes, or memorises public data, fails on
the private ones. A target that is down or fails mid-audit yields availability figures
and a ``fail`` verdict, never an exception. This module never touches the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mltrail.errors import MltrailError

if TYPE_CHECKING:
    from mltrail.audit import probes as P
    from mltrail.audit.claims import ServiceClaims

METRIC_NAMES = ("agreement", "accuracy", "robustness", "p99_latency", "availability")


@dataclass
class AuditOptions:
    """How an oracle audits: its reference and the size of each check."""

    reference_url: str | None = None
    queries: int = 64
    latency_rate_qps: float = 20.0
    latency_duration_s: float = 0.5
    robustness_per_class: int = 1
    robustness_query_cap: int = 40
    timeout_s: float = 10.0


@dataclass
class Metrics:
    values: dict[str, float]          # by METRIC_NAMES; p99_latency in ms
    verdict: str                      # "pass" or "fail"
    report: dict[str, Any] = field(default_factory=dict)

    def report_bytes(self) -> bytes:
        return json.dumps(self.report, sort_keys=True, separators=(",", ":"),
                          default=str).encode()


def _down(endpoint: str, reason: str, wanted: set[str]) -> Metrics:
    values = {m: 0.0 for m in METRIC_NAMES}
    return Metrics(values, "fail", {"target": endpoint, "available": False, "error": reason,
                                    "metrics": sorted(wanted), "verdict": "fail"})


def measure(claims: ServiceClaims | None, wanted: list[str], seed: int,
            opts: AuditOptions | None = None, *, private: P.ProbeSet | None = None,
            service_id: str | None = None, claims_digest: str | None = None,
            claims_error: str | None = None) -> Metrics:
    """Audit the service of ``claims`` for the ``wanted`` metrics: shared probes drawn
    from ``seed``, plus the ``private`` probe set. No claims (``claims_error`` says why):
    nothing to audit, the round's verdict is ``fail``."""
    from mltrail.audit import probes as P
    from mltrail.audit.client import ServiceClient
    from mltrail.audit.runner import AuditConfig, run_audit

    opts = opts or AuditOptions()
    want = set(wanted)
    if claims is None:
        return _down("", claims_error or "no claims on the ledger", want)
    endpoint = claims.endpoint
    try:
        with ServiceClient(endpoint, timeout=opts.timeout_s) as c:
            c.info()
    except MltrailError as exc:
        return _down(endpoint, exc.message, want)

    def cfg(probes: P.ProbeSet, full: bool) -> AuditConfig:
        return AuditConfig(
            target=endpoint, probes=probes, claims=claims, service_id=service_id,
            claims_digest=claims_digest, reference_url=opts.reference_url,
            max_queries=len(probes), timeout_s=opts.timeout_s,
            robustness={"per_class": opts.robustness_per_class,
                        "query_cap": opts.robustness_query_cap}
            if full and "robustness" in want else None,
            latency={"rate_qps": opts.latency_rate_qps, "duration_s": opts.latency_duration_s}
            if full and "p99_latency" in want else None,
            # the shared probes are public: they can never pass alone, so training
            # detectors against them (1-2 s) would only slow the round
            probe_check=not full)

    try:
        report = run_audit(cfg(P.benchmark(opts.queries, seed=seed), True))
        priv = run_audit(cfg(private, False)) if private is not None else None
    except MltrailError as exc:  # the target went away (or answered nonsense) mid-audit
        return _down(endpoint, exc.message, want)
    except Exception as exc:  # noqa: BLE001 - a hostile target's malformed answers
        return _down(endpoint, f"malformed answers: {type(exc).__name__}", want)
    m = report.metrics
    values = {
        "agreement": m.agreement or 0.0, "accuracy": m.accuracy or 0.0,
        "robustness": m.robustness or 0.0, "p99_latency": m.latency_p99_ms or 0.0,
        # every answered probe counts; refusals and malformed answers count against it
        "availability": 1.0 if m.availability is None else m.availability,
    }
    data = report.to_dict()
    data.pop("latency", None)  # per-request samples: large, and not part of the consensus
    data["oracle_metrics"] = values
    # the shared probes are public (their values go on chain), so on their own they can
    # end at most 'inconclusive' (mltrail.audit's rule): they must not fail, and the pass
    # must come from the oracle's private probes
    verdict = report.verdict == "pass"
    if priv is not None:
        pd = priv.to_dict()
        pd.pop("latency", None)
        data["private_probes"] = pd
        verdict = report.verdict in ("pass", "inconclusive") and priv.verdict == "pass"
    # the market knows pass and fail: an audit that could not reach its power is no pass
    return Metrics(values, "pass" if verdict else "fail", data)
