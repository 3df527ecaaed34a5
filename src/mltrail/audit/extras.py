"""Optional runs of an audit: robustness attacks and open-loop latency load.

Owns running them against the target and turning a missed claim into a finding; the
maths lives in :mod:`.robustness` and :mod:`.latency`. Never decides the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.client import ServiceClient, ServiceFailure
from mltrail.audit.result import AuditReport, Findings

if TYPE_CHECKING:
    from mltrail.audit.runner import AuditConfig


def run_extras(cfg: AuditConfig, target: str, info: dict[str, Any], claims: dict[str, Any],
            rep: AuditReport, fs: Findings, pr: P.ProbeSet) -> None:
    """Robustness and open-loop latency runs, when asked for."""
    from mltrail.audit import latency, robustness

    if cfg.robustness is not None:
        rc = claims.get("robustness") or {}
        eps = float(cfg.robustness.get("eps", rc.get("eps", 0.2)))
        cap = int(cfg.robustness.get("query_cap", rc.get("query_cap", 200)))
        bench = P.benchmark()
        x, y = robustness.select_per_class(bench.x, bench.y,
                                           int(cfg.robustness.get("per_class", 3)))
        try:
            with ServiceClient(target, timeout=cfg.timeout_s) as c:
                def query(b: np.ndarray) -> np.ndarray:
                    mb = int(info.get("max_batch", 256))
                    return np.concatenate([c.classify(b[i:i + mb]).probs
                                           for i in range(0, len(b), mb)])
                results = [robustness.simba(query, x, y, eps=eps, query_cap=cap),
                           robustness.square(query, x, y, eps=eps, query_cap=cap)]
        except ServiceFailure as exc:
            fs.add("fail", "availability", f"robustness run stopped: {exc}")
        else:
            cmp = robustness.compare_with_claim(results, rc.get("score"))
            rep.robustness = {"attacks": [r.summary() for r in results], **cmp}
            if cmp["meets_claim"] is False:
                fs.add("fail", "robustness", f"robustness score {cmp['measured_score']:.3f} "
                       f"is below the claimed {rc.get('score')}")
    if cfg.latency is not None:
        lc = claims.get("latency")
        rate = float(cfg.latency.get("rate_qps", (lc or {}).get("rate_qps", 50)))
        res = latency.run_load(target, pr.x[:64], rate_qps=rate,
                               duration_s=float(cfg.latency.get("duration_s", 2.0)))
        summary = res.summary(lc)
        summary["latencies_ms"] = [round(v, 3) for v in res.latencies_ms.tolist()]
        rep.latency = summary
        if summary.get("meets_claim") is False:
            fs.add("fail", "latency", f"p95 {summary['p95_ms']:.1f} ms / error rate "
                   f"{summary['error_rate']:.3f} miss the claim {lc}")
