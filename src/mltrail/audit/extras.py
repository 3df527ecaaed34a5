"""Optional runs of an audit: robustness attacks and open-loop latency load.

Owns running them against the target and turning a missed claim into a finding; the
maths lives in :mod:`.robustness` and :mod:`.latency`. Never decides the verdict.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.client import ServiceFailure, Target
from mltrail.audit.protocols import OIPClient, open_target
from mltrail.audit.result import AuditReport, Findings, Skipped
from mltrail.audit.wire import ServiceInfo

if TYPE_CHECKING:
    from mltrail.audit.runner import AuditConfig


def _robustness_data(pr: P.ProbeSet) -> tuple[np.ndarray, np.ndarray] | str:
    """(inputs, labels) to attack, or why there are none."""
    kind = str(pr.meta.get("data_kind", "image"))
    why = P.needs_images("robustness", kind)
    if why:
        return why
    if pr.meta.get("source") != "user data":
        bench = P.benchmark()
        return bench.x, bench.y
    labelled = pr.kind == P.ORDINARY
    if not labelled.any():
        return "robustness needs labelled inputs; the probe data have no labels (y)"
    x = pr.x[labelled]
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        return "robustness needs pixels in [0, 1]; the image data go outside that range"
    return x, pr.y[labelled]


def _as_audited(c: Target, info: ServiceInfo | None, rep: AuditReport) -> None:
    """A fresh v2 client set up as the audit's was: the metadata's input names and types,
    and what a stock server's metadata leaves out taken from the claims."""
    if info is not None and info.protocol == "oip" and isinstance(c, OIPClient):
        c.info()
        c.adopt(rep.claimed.get("input_shape"), rep.claimed.get("classes"))


def run_extras(cfg: AuditConfig, target: str, info: ServiceInfo | None,
               claims: dict[str, Any], rep: AuditReport, fs: Findings,
               pr: P.ProbeSet) -> None:
    """Robustness and open-loop latency runs, when asked for. A part the probe data
    cannot support is skipped, with its one-line reason in ``rep.skipped`` and an
    ``info`` finding, never silently."""
    from mltrail.audit import latency, robustness

    data: tuple[np.ndarray, np.ndarray] | str | None = None
    rc = claims.get("robustness") or {}
    if cfg.robustness is not None:
        data = _robustness_data(pr)
        if isinstance(data, str):
            rep.skipped.append(Skipped(check="robustness", reason=data))
            fs.add("info", "robustness", f"skipped: {data}")
    if cfg.robustness is not None and isinstance(data, tuple):
        eps = float(cfg.robustness.get("eps", rc.get("eps", 0.2)))
        cap = int(cfg.robustness.get("query_cap", rc.get("query_cap", 200)))
        x, y = robustness.select_per_class(data[0], data[1],
                                           int(cfg.robustness.get("per_class", 3)))
        try:
            with open_target(target, protocol=cfg.protocol, adapter=cfg.adapter,
                             timeout=cfg.timeout_s) as c:
                _as_audited(c, info, rep)
                mb = int((info.max_batch if info is not None else None) or 256)

                def query(b: np.ndarray) -> np.ndarray:
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
        with open_target(target, protocol=cfg.protocol, adapter=cfg.adapter,
                         timeout=cfg.timeout_s) as c:
            _as_audited(c, info, rep)
            res = latency.run_load(target, pr.x[:64], rate_qps=rate,
                                   duration_s=float(cfg.latency.get("duration_s", 2.0)),
                                   client=c)
        summary = res.summary(lc)
        summary["latencies_ms"] = [round(v, 3) for v in res.latencies_ms.tolist()]
        rep.latency = summary
        if summary.get("meets_claim") is False:
            fs.add("fail", "latency", f"p95 {summary['p95_ms']:.1f} ms / error rate "
                   f"{summary['error_rate']:.3f} miss the claim {lc}")
