"""The one adapter between the oracle network and the audit library.

:func:`measure` runs an audit of a service endpoint and reduces its report to the five
metrics the market knows (agreement with the reference, accuracy, robustness, p99
latency, availability) and a verdict. Every oracle of a round draws the same probes
(seeded by the round's request block), so honest oracles measure the same agreement and
accuracy. A target that is down or fails mid-audit yields availability figures and a
``fail`` verdict, never an exception. This module never touches the ledger.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mltrail.errors import MltrailError

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


def measure(endpoint: str, wanted: list[str], seed: int,
            opts: AuditOptions | None = None) -> Metrics:
    """Audit ``endpoint`` for the ``wanted`` metrics with probes drawn from ``seed``."""
    from mltrail.audit import probes as P
    from mltrail.audit.client import ServiceClient
    from mltrail.audit.runner import AuditConfig, run_audit

    opts = opts or AuditOptions()
    want = set(wanted)
    try:
        with ServiceClient(endpoint, timeout=opts.timeout_s) as c:
            c.info()
    except MltrailError as exc:
        return _down(endpoint, exc.message, want)
    cfg = AuditConfig(
        target=endpoint, probes=P.held(opts.queries, seed=seed),
        reference_url=opts.reference_url, max_queries=opts.queries,
        robustness={"per_class": opts.robustness_per_class,
                    "query_cap": opts.robustness_query_cap} if "robustness" in want else None,
        latency={"rate_qps": opts.latency_rate_qps, "duration_s": opts.latency_duration_s}
        if "p99_latency" in want else None)
    try:
        report = run_audit(cfg)
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
    # the market knows pass and fail: an audit that could not reach its power is no pass
    return Metrics(values, "pass" if report.verdict == "pass" else "fail", data)
