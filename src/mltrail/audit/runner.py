"""The audit: query a target service with probes, run every check, return a report dict.

Owns the order of the checks and the verdict. Checks (each module owns its maths):
receipts on every response; label identity and probability-distribution tests against a
reference (another service, a model file, or a model rebuilt from the published seed
config); paired and claimed accuracy; keyed probes (stego containers, trigger inputs);
exact comparison when the model was rebuilt; optional robustness and latency runs.
Every sequential test is checked after every query; the audit's α is split evenly
(Bonferroni) over the sequential tests it runs, so the chance that an honest service is
flagged by any of them stays ≤ α. :func:`record_verdict` is the only code here that
touches the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.client import ServiceClient
from mltrail.audit.deterministic import ExactComparison, rebuild
from mltrail.audit.models import load_model, predict
from mltrail.audit.receipts import ReceiptVerifier, load_public_key
from mltrail.audit.stats import BernoulliSPRT, BettingTest, binomial_exact, mcnemar_exact

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger


@dataclass
class AuditConfig:
    target: str
    probes: P.ProbeSet
    reference_url: str | None = None
    model_path: str | None = None
    public_key: str | None = None
    alpha: float = 0.05
    batch_size: int = 32
    max_queries: int | None = None
    identity_tolerance: float = 0.0
    prob_tolerance: float = 1e-3
    min_drop: float = 0.04
    keyed_margin: float = 0.05
    rebuild_seeded: bool = True
    require_receipts: bool = False
    stop_on_alarm: bool = False
    robustness: dict[str, Any] | None = None   # {"eps", "query_cap", "per_class"}
    latency: dict[str, Any] | None = None      # {"rate_qps", "duration_s"}
    on_progress: Callable[[int], None] | None = None


@dataclass
class _State:
    findings: list[dict[str, Any]] = field(default_factory=list)
    tests: dict[str, BettingTest | BernoulliSPRT] = field(default_factory=dict)
    bad_receipts: list[dict[str, Any]] = field(default_factory=list)
    receipts_ok: int = 0
    receipts_missing: int = 0
    decided_at: dict[str, int] = field(default_factory=dict)

    def find(self, severity: str, check: str, message: str) -> None:
        self.findings.append({"severity": severity, "check": check, "message": message})


def _reference(cfg: AuditConfig, info: dict[str, Any], st: _State
               ) -> tuple[Any, str | None, dict[str, Any]]:
    """(predict function or client, pinned public key, summary) for the reference."""
    claimed = str(info.get("model_digest"))
    summary: dict[str, Any] = {"kind": None}
    key = cfg.public_key
    if cfg.reference_url:
        ref = ServiceClient(cfg.reference_url)
        rinfo = ref.info()
        key = key or rinfo.get("public_key")
        summary = {"kind": "service", "url": cfg.reference_url,
                   "model_digest": rinfo.get("model_digest")}
        if rinfo.get("model_digest") != claimed:
            st.find("fail", "claim", f"target claims {claimed} but the reference serves "
                    f"{rinfo.get('model_digest')}")
        return ref, key, summary
    if cfg.model_path:
        model, _, digest = load_model(cfg.model_path)
        summary = {"kind": "model file", "path": str(cfg.model_path), "model_digest": digest}
        if digest != claimed:
            st.find("fail", "claim", f"target claims {claimed} but the reference model "
                    f"file is {digest}")
        return model, key, summary
    seed_cfg = info.get("seed_config")
    if seed_cfg and cfg.rebuild_seeded:
        rb = rebuild(seed_cfg, claimed)
        summary = {"kind": "seeded rebuild", **rb.summary()}
        if not rb.matches:
            st.find("fail", "deterministic", rb.error or "the published seed config does "
                    f"not reproduce the claimed model (rebuilt {rb.digest})")
            return None, key, summary
        return rb.model, key, summary
    return None, key, summary


def _ref_outputs(ref: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if ref is None:
        return None
    if isinstance(ref, ServiceClient):
        r = ref.classify(batch)
        return r.labels, r.probs
    probs = predict(ref, batch)
    return probs.argmax(1), probs


def run_audit(cfg: AuditConfig) -> dict[str, Any]:
    """Run the audit described by ``cfg``; return the report as a JSON-able dict."""
    t0 = time.time()
    st = _State()
    target = ServiceClient(cfg.target)
    info = target.info()
    ref, key_b64, ref_summary = _reference(cfg, info, st)
    claimed_digest = str(info.get("model_digest"))
    claims = info.get("claims") or {}
    if key_b64 and info.get("public_key") and info.get("public_key") != key_b64:
        st.find("fail", "receipts", "target advertises a different signing key than the "
                "supplier's pinned key")
    if not key_b64:
        key_b64 = info.get("public_key")
        st.find("info", "receipts", "no pinned key: receipts checked against the key the "
                "target advertises")
    verifier = ReceiptVerifier(load_public_key(key_b64), claimed_digest) if key_b64 else None
    exact = ExactComparison(ref) if ref_summary.get("kind") == "seeded rebuild" and ref \
        else None

    pr = cfg.probes
    n_total = min(len(pr), cfg.max_queries or len(pr))
    kinds = set(pr.kind[:n_total].tolist())
    has_ref = ref is not None
    labelled = kinds & {P.BENCHMARK, P.ORDINARY}
    names: list[str] = []
    if has_ref:
        names += ["identity", "distribution"]
        if labelled:
            names.append("paired_accuracy")
    if P.BENCHMARK in kinds and claims.get("accuracy"):
        names.append("claimed_accuracy")
    if P.CONTAINER in kinds:
        names.append("stego")
    if P.TRIGGER in kinds:
        names.append("trigger")
    a = cfg.alpha / max(1, len(names))
    hit = float(pr.meta.get("hit_rate", 0.95))
    for name in names:
        if name == "identity":
            st.tests[name] = BettingTest(cfg.identity_tolerance, a)
        elif name == "distribution":
            st.tests[name] = BettingTest(cfg.prob_tolerance, a)
        elif name == "paired_accuracy":
            st.tests[name] = BettingTest(0.5, a)
        elif name == "claimed_accuracy":
            p0 = 1.0 - float(claims["accuracy"])
            st.tests[name] = BernoulliSPRT(p0, min(0.99, p0 + cfg.min_drop), a, 0.05)
        elif name == "stego":
            st.tests[name] = BettingTest(min(0.95, 1.0 - hit + cfg.keyed_margin), a)
        else:
            st.tests[name] = BettingTest(0.1 + cfg.keyed_margin, a)

    t_correct: list[bool] = []
    r_correct: list[bool] = []
    bench_correct: list[bool] = []
    keyed_hits: dict[str, list[bool]] = {"stego": [], "trigger": []}
    alarm_at: int | None = None
    q = 0
    while q < n_total and not (cfg.stop_on_alarm and alarm_at is not None):
        sl = slice(q, min(n_total, q + cfg.batch_size))
        batch, ys, ks = pr.x[sl], pr.y[sl], pr.kind[sl]
        resp = target.classify(batch)
        if resp.receipt is None:
            st.receipts_missing += 1
        elif verifier is not None:
            chk = verifier.check(resp.receipt, batch=batch, outputs=resp.outputs,
                                 nonce=resp.nonce, sent_at=resp.sent_at)
            if chk.ok:
                st.receipts_ok += 1
            else:
                st.bad_receipts.append({"queries": [sl.start + 1, sl.stop],
                                        "problems": chk.problems,
                                        "receipt": resp.receipt})
        labels, probs = resp.labels, resp.probs
        refo = _ref_outputs(ref, batch)
        if exact is not None:
            exact.add(batch, labels, probs)
        for i in range(len(batch)):
            k, y, lab = int(ks[i]), int(ys[i]), int(labels[i])
            if refo is not None:
                rl, rp = int(refo[0][i]), refo[1][i]
                st.tests["identity"].update(float(lab != rl))
                tv = 0.5 * float(np.abs(probs[i] - rp).sum()) if probs[i].shape == rp.shape \
                    else 1.0
                st.tests["distribution"].update(tv)
                if k in (P.BENCHMARK, P.ORDINARY):
                    t_correct.append(lab == y)
                    r_correct.append(rl == y)
                    if (lab == y) != (rl == y):
                        st.tests["paired_accuracy"].update(float(lab != y))
            if k == P.BENCHMARK:
                bench_correct.append(lab == y)
                if "claimed_accuracy" in st.tests:
                    st.tests["claimed_accuracy"].update(lab != y)
            if k in (P.CONTAINER, P.TRIGGER):
                name = "stego" if k == P.CONTAINER else "trigger"
                keyed_hits[name].append(lab == y)
                st.tests[name].update(float(lab != y))
            for name, t in st.tests.items():
                if t.rejected and name not in st.decided_at:
                    st.decided_at[name] = sl.start + i + 1  # the query, not the observation
        q = sl.stop
        if cfg.on_progress is not None:
            cfg.on_progress(len(batch))
        alarms = [v for n, v in st.decided_at.items() if n != "claimed_accuracy"]
        alarm_at = min(alarms) if alarms else None
    target.close()
    if isinstance(ref, ServiceClient):
        ref.close()

    report: dict[str, Any] = {
        "version": 1, "target": cfg.target, "claimed": {k: info.get(k) for k in
                                                        ("name", "model_digest", "claims",
                                                         "seed_config", "public_key")},
        "reference": ref_summary, "alpha": cfg.alpha, "alpha_per_test": a,
        "queries": q, "probes": pr.counts(), "probe_meta": pr.meta, "first_alarm_at": alarm_at,
    }
    report["receipts"] = {"checked": verifier is not None, "valid": st.receipts_ok,
                          "invalid": len(st.bad_receipts), "missing": st.receipts_missing,
                          "bad_examples": st.bad_receipts[:5]}
    if st.bad_receipts:
        st.find("fail", "receipts", f"{len(st.bad_receipts)} invalid receipt(s): "
                f"{st.bad_receipts[0]['problems'][0]} — proof of fraud")
    if st.receipts_missing:
        st.find("fail" if cfg.require_receipts else "warn", "receipts",
                f"{st.receipts_missing} response(s) without a receipt")
    seq = {}
    for name, t in st.tests.items():
        s = t.summary()
        s["path"] = t.log_wealth if isinstance(t, BettingTest) else t.path
        s["threshold"] = t.threshold if isinstance(t, BettingTest) else t.upper
        seq[name] = s
        if t.rejected:
            what = {"identity": "labels differ from the reference",
                    "distribution": "probabilities differ from the reference",
                    "paired_accuracy": "target is less accurate than the reference",
                    "claimed_accuracy": "accuracy is below the supplier's claim",
                    "stego": "keyed stego probes are not recognised (not the genuine model)",
                    "trigger": "keyed trigger set is not recognised (not the genuine model)"}
            at = st.decided_at.get(name)
            s["rejected_at_query"] = at
            st.find("fail", name, f"{what[name]} (sequential test rejected H0 at query {at})")
    report["sequential"] = seq
    fixed: dict[str, Any] = {}
    if t_correct:
        fixed["mcnemar"] = mcnemar_exact(np.array(t_correct), np.array(r_correct))
    if bench_correct and claims.get("accuracy"):
        acc = float(np.mean(bench_correct))
        fixed["claimed_accuracy"] = {"n": len(bench_correct), "accuracy": acc,
                                     "claimed": claims["accuracy"],
                                     "p_value": binomial_exact(int(np.sum(bench_correct)),
                                                               len(bench_correct),
                                                               float(claims["accuracy"]))}
    for name, hits in keyed_hits.items():
        if hits:
            t = st.tests[name]
            assert isinstance(t, BettingTest)
            p0 = 1.0 - t.m0
            fixed[name] = {"n": len(hits), "hits": int(np.sum(hits)), "h0_hit_rate": p0,
                           "p_value": binomial_exact(int(np.sum(hits)), len(hits), p0)}
    report["fixed_sample"] = fixed
    if exact is not None:
        report["exact"] = exact.summary()
        if not exact.ok:
            st.find("fail", "deterministic", f"{exact.label_mismatches} label and "
                    f"{exact.prob_mismatches} probability mismatch(es) with the rebuilt model")
    _extras(cfg, info, claims, report, st)
    report["findings"] = st.findings
    report["verdict"] = "fail" if any(f["severity"] == "fail" for f in st.findings) else "pass"
    report["duration_s"] = round(time.time() - t0, 3)
    return report


def _extras(cfg: AuditConfig, info: dict[str, Any], claims: dict[str, Any],
            report: dict[str, Any], st: _State) -> None:
    """Robustness and latency runs, when asked for."""
    from mltrail.audit import latency, robustness

    if cfg.robustness is not None:
        rc = claims.get("robustness") or {}
        eps = float(cfg.robustness.get("eps", rc.get("eps", 0.2)))
        cap = int(cfg.robustness.get("query_cap", rc.get("query_cap", 200)))
        bench = P.benchmark()
        x, y = robustness.select_per_class(bench.x, bench.y,
                                           int(cfg.robustness.get("per_class", 3)))
        with ServiceClient(cfg.target) as c:
            def query(b: np.ndarray) -> np.ndarray:
                mb = int(info.get("max_batch", 256))
                return np.concatenate([c.classify(b[i:i + mb]).probs
                                       for i in range(0, len(b), mb)])
            results = [robustness.simba(query, x, y, eps=eps, query_cap=cap),
                       robustness.square(query, x, y, eps=eps, query_cap=cap)]
        cmp = robustness.compare_with_claim(results, rc.get("score"))
        report["robustness"] = {"attacks": [r.summary() for r in results], **cmp}
        if cmp["meets_claim"] is False:
            st.find("fail", "robustness", f"robustness score {cmp['measured_score']:.3f} is "
                    f"below the claimed {rc.get('score')}")
    if cfg.latency is not None:
        lc = claims.get("latency")
        rate = float(cfg.latency.get("rate_qps", (lc or {}).get("rate_qps", 50)))
        res = latency.run_load(cfg.target, cfg.probes.x[:64], rate_qps=rate,
                               duration_s=float(cfg.latency.get("duration_s", 2.0)))
        summary = res.summary(lc)
        summary["latencies_ms"] = [round(v, 3) for v in res.latencies_ms.tolist()]
        report["latency"] = summary
        if summary.get("meets_claim") is False:
            st.find("fail", "latency", f"p95 {summary['p95_ms']:.1f} ms / error rate "
                    f"{summary['error_rate']:.3f} miss the claim {lc}")


def record_verdict(ledger: Ledger, service_id: str, report_bytes: bytes,
                   verdict: str) -> dict[str, Any]:
    """Store the report and move the service artefact to ``audited`` or ``suspended``."""
    digest = ledger.home.store.put(report_bytes)
    state = ledger.lifecycle.bound_state("audit", "audited" if verdict == "pass" else "suspended")
    tx = ledger.transition(service_id, state, evidence_digest=digest)
    return {"service": service_id, "state": state, "report_digest": digest,
            "tx_hash": tx.tx_hash, "block": tx.block, "gas_used": tx.gas_used}
