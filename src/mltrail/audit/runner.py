"""The audit: claims from the ledger, probes and clients' samples against a reference.

Owns the order of the checks and the verdict; :func:`run_audit` is the library entry
point (``AuditConfig`` in, typed :class:`~mltrail.audit.result.AuditReport` out).

* Claims come from the ledger (:mod:`.claims`) when ``cfg.claims`` is given; whatever
  the target advertises must equal them, each difference is a named failure. Without
  ledger claims the target's own ``/v1/model`` is used, and the report says so.
* Every request is an ordinary-looking batch (a random size up to ``batch_size``, a
  random hex nonce, inputs from the auditor's probe pool) and every request is timed:
  latency is measured on the same stream as identity, with no marker to key on.
* A refusal, timeout or malformed answer is never an error of the audit: it counts
  against the service's availability (its own test, against its own claim) and the
  audit goes on; a service that answers nothing fails.
* Each answer updates the sequential tests of :mod:`.checks` (α split evenly); clients'
  submitted samples (:mod:`.traffic`) are checked the same way under ``traffic_*``.
* "No test, no pass": the verdict is ``pass`` only if an identity or claim test reached
  its stated power; otherwise ``inconclusive``. Probes from public data, or that a
  key-less detector tells from genuine inputs (:mod:`.distinguish`), cannot pass alone:
  then only a test on clients' signed traffic can make it ``pass``.
* When the ledger claims name a receipt key, a missing receipt is a failure on the
  audit's own requests and a client's finding in the traffic (:mod:`.evidence`).
* The default probes are the auditor's own held data (:mod:`.heldout`).

:func:`record_verdict` is the only code here that touches the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mltrail.audit import probes as P
from mltrail.audit.adapter import AdapterSpec
from mltrail.audit.checks import WHAT, TestBank
from mltrail.audit.claimed import claims_of, target_info
from mltrail.audit.claims import ServiceClaims
from mltrail.audit.client import ServiceFailure, Target
from mltrail.audit.deterministic import PROB_TOLERANCE, ExactComparison, rebuild
from mltrail.audit.distinguish import assess_probes, demote_probe_tests
from mltrail.audit.evidence import check_traffic
from mltrail.audit.extras import run_extras
from mltrail.audit.models import INPUT_SHAPE, load_model, predict
from mltrail.audit.protocols import ProtocolName, open_target
from mltrail.audit.receipts import ReceiptVerifier, load_public_key
from mltrail.audit.result import (
    AuditReport,
    Availability,
    ClaimsCheck,
    Findings,
    Metrics,
    Power,
    Receipts,
    Reference,
    Timing,
)
from mltrail.audit.stats import binomial_exact, mcnemar_exact
from mltrail.audit.traffic import Submission
from mltrail.errors import InputError, MltrailError

if TYPE_CHECKING:
    from mltrail.ledger.client import Ledger

DEFAULT_AVAILABILITY = 0.95  # when the claims state none


@dataclass
class AuditConfig:
    target: str | None = None          # default: the claims' endpoint
    probes: P.ProbeSet | None = None   # default: fresh probes (see mltrail.audit.fresh)
    claims: ServiceClaims | None = None
    service_id: str | None = None
    claims_digest: str | None = None
    traffic: list[Submission] | None = None
    reference_url: str | None = None
    model_path: str | None = None
    public_key: str | None = None
    alpha: float = 0.05
    batch_size: int = 32
    fixed_batch: bool = False          # every request exactly batch_size (benchmarks)
    max_queries: int | None = None
    identity_tolerance: float = 0.0
    prob_tolerance: float = 1e-3
    min_drop: float = 0.04
    keyed_margin: float = 0.05
    effect: float = 0.05               # disagreement the identity tests must detect
    power: float = 0.95
    rebuild_seeded: bool = True
    require_receipts: bool = False
    stop_on_alarm: bool = False
    timeout_s: float = 10.0
    seed: int | None = None
    robustness: dict[str, Any] | None = None   # {"eps", "query_cap", "per_class"}
    latency: dict[str, Any] | None = None      # {"rate_qps", "duration_s"}
    on_progress: Callable[[int], None] | None = None
    protocol: ProtocolName = "auto"    # see mltrail.audit.protocols.open_target
    adapter: AdapterSpec | None = None
    receipt_quorum: int = 3            # clients that must independently see unsigned answers
    missing_tolerance: float = 0.0     # H0 of the missing-receipt test: rate <= this
    probe_check: bool = True           # adversarial validation of the probe set


def _reference(cfg: AuditConfig, claimed: str, seed_cfg: Any, ref_url: str | None,
               fs: Findings) -> tuple[Any, dict[str, Any]]:
    """(predict function or client, summary) of the reference the claims name."""
    if ref_url:
        ref = open_target(ref_url, timeout=cfg.timeout_s)
        try:
            rinfo = ref.info()
        except MltrailError as exc:
            raise InputError(f"the reference service is unusable: {exc}") from exc
        if rinfo.protocol != "mltrail":
            fs.add("info", "reference", f"the reference speaks {rinfo.protocol} and names no "
                   "model digest: it is trusted to serve the claimed model")
        elif rinfo.model_digest != claimed:
            fs.add("fail", "claim", f"claims name {claimed} but the reference serves "
                   f"{rinfo.model_digest}")
        return ref, {"kind": "service", "url": ref_url, "model_digest": rinfo.model_digest}
    if cfg.model_path:
        model, _, digest = load_model(cfg.model_path)
        if digest != claimed:
            fs.add("fail", "claim", f"claims name {claimed} but the reference model file "
                   f"is {digest}")
        return model, {"kind": "model file", "path": str(cfg.model_path), "model_digest": digest}
    if seed_cfg and cfg.rebuild_seeded:
        rb = rebuild(seed_cfg, claimed)
        if not rb.matches:
            fs.add("fail", "deterministic", rb.error or "the published seed config does "
                   f"not reproduce the claimed model (rebuilt {rb.digest})")
            return None, {"kind": "seeded rebuild", **rb.summary()}
        return rb.model, {"kind": "seeded rebuild", **rb.summary()}
    return None, {"kind": None}


def _ref_outputs(ref: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    if ref is None:
        return None
    if isinstance(ref, Target):
        r = ref.classify(batch)
        return r.labels, r.probs
    probs = predict(ref, batch)
    return probs.argmax(1), probs


def _probe_set(cfg: AuditConfig, shape: list[int] | None) -> P.ProbeSet:
    if cfg.probes is not None:
        got = list(cfg.probes.x.shape[1:])
        if shape is not None and int(np.prod(got)) != int(np.prod(shape)):
            raise InputError(f"the probe data are inputs of shape {got}; the service takes "
                             f"{list(shape)}")
        return cfg.probes
    if shape is not None and int(np.prod(shape)) != int(np.prod(INPUT_SHAPE)):
        raise InputError(f"the auditor's own probes are 8x8 digit images; this service takes "
                         f"inputs of shape {list(shape)}: give probes from your own data "
                         "(--data)")
    import secrets

    return P.held(cfg.max_queries or 300,
                  seed=cfg.seed if cfg.seed is not None else secrets.randbits(128))


def run_audit(cfg: AuditConfig) -> AuditReport:
    """Run the audit described by ``cfg``."""
    t0 = time.time()
    fs = Findings()
    target_url = cfg.target or (cfg.claims.endpoint if cfg.claims else None)
    if not target_url:
        raise InputError("no target: give a URL or ledger claims with an endpoint")
    target = open_target(target_url, protocol=cfg.protocol, adapter=cfg.adapter,
                         timeout=cfg.timeout_s, seed=cfg.seed)
    info = target_info(target, fs)
    claimed, claims_check = claims_of(cfg.claims, cfg.model_path, info, fs, target)
    claimed["protocol"] = target.protocol
    digest = str(claimed.get("model_digest"))
    claims = claimed.get("claims") or {}
    ref, ref_summary = _reference(cfg, digest, claimed.get("seed_config"),
                                  cfg.reference_url or claimed.get("reference"), fs)
    key_b64 = cfg.public_key or (claimed.get("public_key") if cfg.claims else None)
    advertised_key = info.public_key if info is not None else None
    if key_b64 and advertised_key and advertised_key != key_b64 and cfg.claims is None:
        fs.add("fail", "receipts", "target advertises a different signing key than the "
               "pinned key")
    if not key_b64 and isinstance(advertised_key, str):
        key_b64 = advertised_key
        fs.add("info", "receipts", "no pinned key: receipts checked against the key the "
               "target advertises")
    verifier = ReceiptVerifier(load_public_key(key_b64), digest) \
        if key_b64 and claimed.get("model_digest") else None
    exact = ExactComparison(ref) if ref_summary.get("kind") == "seeded rebuild" and ref \
        else None
    classes = claimed.get("classes")

    pr = _probe_set(cfg, claimed.get("input_shape"))
    n_total = min(len(pr), cfg.max_queries or len(pr))
    kinds = set(pr.kind[:n_total].tolist())
    traffic = cfg.traffic or []
    names: list[str] = []
    m0: dict[str, float] = {}
    effect: dict[str, float] = {}
    sprt: dict[str, tuple[float, float]] = {}
    if ref is not None:
        names += ["identity", "distribution"]
        m0 |= {"identity": cfg.identity_tolerance, "distribution": cfg.prob_tolerance}
        if kinds & {P.BENCHMARK, P.ORDINARY}:
            names.append("paired_accuracy")
            m0["paired_accuracy"] = 0.5
            effect["paired_accuracy"] = 0.3
        if traffic:
            names += ["traffic_identity", "traffic_distribution"]
            m0 |= {"traffic_identity": cfg.identity_tolerance,
                   "traffic_distribution": cfg.prob_tolerance}
    for n in ("identity", "distribution", "traffic_identity", "traffic_distribution"):
        effect[n] = cfg.effect
    if P.BENCHMARK in kinds and claims.get("accuracy"):
        names.append("claimed_accuracy")
        p0 = 1.0 - float(claims["accuracy"])
        sprt["claimed_accuracy"] = (p0, min(0.99, p0 + cfg.min_drop))
    hit = float(pr.meta.get("hit_rate", 0.95))
    if P.CONTAINER in kinds:
        names.append("stego")
        m0["stego"], effect["stego"] = min(0.95, 1.0 - hit + cfg.keyed_margin), 0.5
    if P.TRIGGER in kinds:
        names.append("trigger")
        m0["trigger"], effect["trigger"] = 0.1 + cfg.keyed_margin, 0.5
    avail_claim = float(claims.get("availability") or DEFAULT_AVAILABILITY)
    names.append("availability")
    m0["availability"] = 1.0 - avail_claim
    lat_claim = claims.get("latency") or None
    if lat_claim:
        names.append("latency")
        m0["latency"] = 0.05
    local = ref is not None and not isinstance(ref, Target)
    if local:  # the claimed model itself, on this machine: outputs must match exactly
        for n in ("distribution", "traffic_distribution"):
            if n in m0:
                m0[n] = 0.0
    bank = TestBank(names, cfg.alpha, m0, effect, cfg.power, sprt,
                    exact_tol=PROB_TOLERANCE if local else None)

    rng = np.random.default_rng(cfg.seed)
    st: dict[str, Any] = {"ok": 0, "missing": 0, "bad": [], "fail_reasons": {}, "requests": 0,
                          "answered": 0, "lat": [], "examples": []}
    t_correct: list[bool] = []
    r_correct: list[bool] = []
    bench_correct: list[bool] = []
    agree: list[bool] = []
    keyed_hits: dict[str, list[bool]] = {"stego": [], "trigger": []}
    q = 0
    while q < n_total and not (cfg.stop_on_alarm and bank.first_alarm() is not None):
        size = cfg.batch_size if cfg.fixed_batch else int(rng.integers(1, cfg.batch_size + 1))
        sl = slice(q, min(n_total, q + size))
        batch, ys, ks = pr.x[sl], pr.y[sl], pr.kind[sl]
        q = sl.stop
        st["requests"] += 1
        if cfg.on_progress is not None:
            cfg.on_progress(len(batch))
        try:
            resp = target.classify(batch)
        except ServiceFailure as exc:
            st["fail_reasons"][exc.reason] = st["fail_reasons"].get(exc.reason, 0) + 1
            if len(st["examples"]) < 5:
                st["examples"].append({"request": st["requests"], "reason": exc.reason,
                                       "message": str(exc)[:300]})
            bank.update("availability", 1.0, q)
            if exc.reason != "malformed":
                st["lat"].append(exc.elapsed_ms)
                bank.update("latency", float(exc.elapsed_ms > float(
                    (lat_claim or {}).get("p95_ms", 1e12))), q)
            continue
        st["answered"] += 1
        bank.update("availability", 0.0, q)
        st["lat"].append(resp.elapsed_ms)
        if lat_claim:
            bank.update("latency", float(resp.elapsed_ms > float(lat_claim["p95_ms"])), q)
        if resp.receipt is None:
            st["missing"] += 1
        elif verifier is not None:
            chk = verifier.check(resp.receipt, batch=batch, outputs=resp.outputs,
                                 nonce=resp.nonce, sent_at=resp.sent_at)
            if chk.ok:
                st["ok"] += 1
            else:
                st["bad"].append({"queries": [sl.start + 1, sl.stop], "problems": chk.problems,
                                  "receipt": resp.receipt})
        labels, probs = resp.labels, resp.probs
        if classes and probs.shape[1] != classes:
            st["width"] = probs.shape[1]
        refo = _ref_outputs(ref, batch)
        if exact is not None:
            exact.add(batch, labels, probs)
        for i in range(len(batch)):
            k, y, lab, at = int(ks[i]), int(ys[i]), int(labels[i]), sl.start + i + 1
            if refo is not None:
                rl = int(refo[0][i])
                agree.append(lab == rl)
                bank.pair("", lab, probs[i], rl, refo[1][i], at)
                if k in (P.BENCHMARK, P.ORDINARY):
                    t_correct.append(lab == y)
                    r_correct.append(rl == y)
                    if (lab == y) != (rl == y):
                        bank.update("paired_accuracy", float(lab != y), at)
            if k == P.BENCHMARK:
                bench_correct.append(lab == y)
                bank.update("claimed_accuracy", float(lab != y), at)
            if k in (P.CONTAINER, P.TRIGGER):
                name = "stego" if k == P.CONTAINER else "trigger"
                keyed_hits[name].append(lab == y)
                bank.update(name, float(lab != y), at)
    target.close()
    signs = bool(cfg.claims is not None and cfg.claims.public_key)
    vouched: list[Any] = []   # submitted inputs a receipt vouches for: the genuine traffic
    traffic_summary = check_traffic(
        traffic, lambda b: _ref_outputs(ref, b), exact, bank, verifier, claimed, fs,
        signs=signs, alpha=bank.per_test, m0=cfg.missing_tolerance,
        quorum=cfg.receipt_quorum, vouched=vouched) if traffic else None
    if isinstance(ref, Target):
        ref.close()

    failed = st["requests"] - st["answered"]
    availability = {"requests": st["requests"], "answered": st["answered"], "failed": failed,
                    "reasons": st["fail_reasons"], "examples": st["examples"],
                    "claimed": claims.get("availability"), "tested_against": avail_claim}
    if st["requests"] and not st["answered"]:
        fs.add("fail", "availability", f"the service refused the audit: all {failed} "
               f"requests failed ({_reasons(st['fail_reasons'])})")
    elif failed:
        fs.add("warn", "availability", f"{failed} of {st['requests']} requests failed "
               f"({_reasons(st['fail_reasons'])})")
    if st.get("width"):
        fs.add("fail", "claims", f"answers carry {st['width']} class probabilities; the "
               f"claimed model has {classes} classes")
    if st["fail_reasons"].get("malformed"):
        fs.add("fail", "malformed", f"{st['fail_reasons']['malformed']} malformed "
               f"response(s): {st['examples'][0]['message'] if st['examples'] else ''}")
    lat = np.array(st["lat"]) if st["lat"] else np.zeros(0)
    timing = {"requests": len(lat), "claim": lat_claim,
              **{f"p{p}_ms": (float(np.percentile(lat, p)) if len(lat) else None)
                 for p in (50, 95, 99)}}
    receipts = {"checked": verifier is not None, "valid": st["ok"], "invalid": len(st["bad"]),
                "missing": st["missing"], "bad_examples": st["bad"][:5]}
    if st["bad"]:
        fs.add("fail", "receipts", f"{len(st['bad'])} invalid receipt(s): "
               f"{st['bad'][0]['problems'][0]} — proof of fraud")
    if st["missing"]:
        fs.add("fail" if cfg.require_receipts or signs else "warn", "receipts",
               f"{st['missing']} response(s) without a receipt"
               + (" (the ledger claims say the service signs)" if signs else ""))
    seq = bank.summaries()
    for name, t in bank.tests.items():
        if t.rejected:
            fs.add("fail", name, f"{WHAT[name]} (sequential test rejected H0 at query "
                   f"{bank.decided_at.get(name)})")
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
            p0 = 1.0 - bank.m0[name]
            fixed[name] = {"n": len(hits), "hits": int(np.sum(hits)), "h0_hit_rate": p0,
                           "p_value": binomial_exact(int(np.sum(hits)), len(hits), p0)}
    exact_summary = None
    if exact is not None:
        exact_summary = exact.summary()
        if not exact.ok:
            fs.add("fail", "deterministic", f"{exact.label_mismatches} label and "
                   f"{exact.prob_mismatches} probability mismatch(es) with the rebuilt model")
    power = bank.power()
    if exact is not None and exact.n:
        power["tests"]["exact"] = {"n": exact.n, "needed": power_needed_exact(cfg),
                                   "effect": cfg.effect,
                                   "counts": not exact.ok or exact.n >= power_needed_exact(cfg)}
        power["sufficient"] = power["sufficient"] or power["tests"]["exact"]["counts"]
    strength = assess_probes(pr, n_total, vouched, claimed.get("input_shape"),
                             seed=cfg.seed, run=cfg.probe_check)
    power = demote_probe_tests(power, strength)
    rep = AuditReport(
        verdict="pass", target=target_url, service_id=cfg.service_id,
        claims_source=claims_check["source"], claims_digest=cfg.claims_digest,
        claimed=claimed, reference=Reference.model_validate(ref_summary), alpha=cfg.alpha,
        alpha_per_test=bank.per_test, queries=q, probes=pr.counts(), probe_meta=pr.meta,
        first_alarm_at=bank.first_alarm(), metrics=Metrics(), findings=[],
        claims_check=ClaimsCheck.model_validate(claims_check),
        power=Power.model_validate(power), availability=Availability.model_validate(availability),
        timing=Timing.model_validate(timing), receipts=Receipts.model_validate(receipts),
        sequential=seq,
        fixed_sample=fixed, exact=exact_summary, traffic=traffic_summary,
        probe_check=strength)
    run_extras(cfg, target_url, info, claims, rep, fs, pr)
    rep.metrics = Metrics(
        queries=q, answered=st["answered"], traffic_samples=len(traffic),
        agreement=float(np.mean(agree)) if agree else None,
        accuracy=float(np.mean(t_correct)) if t_correct else (
            float(np.mean(bench_correct)) if bench_correct else None),
        robustness=(rep.robustness or {}).get("measured_score"),
        latency_p50_ms=timing["p50_ms"], latency_p99_ms=timing["p99_ms"],
        availability=st["answered"] / st["requests"] if st["requests"] else None)
    failed_any = any(f.severity == "fail" for f in fs)
    if not strength["alone"]:
        fs.add("warn" if not power["sufficient"] and not failed_any else "info", "probes",
               f"the probe set cannot pass the audit on its own: {strength['why']}"
               + ("" if power["sufficient"] or failed_any else
                  "; no test on clients' signed traffic reached its power: inconclusive"))
    elif not failed_any and not power["sufficient"]:
        fs.add("warn", "power", "no identity or claim test reached its stated power "
               f"({_power_text(power)}): inconclusive")
    rep.findings = list(fs)
    rep.verdict = "fail" if any(f.severity == "fail" for f in fs) else (
        "pass" if power["sufficient"] else "inconclusive")
    rep.duration_s = round(time.time() - t0, 3)
    return rep


def power_needed_exact(cfg: AuditConfig) -> int:
    from mltrail.audit.checks import required_n

    return required_n(0.0, cfg.effect, cfg.alpha, cfg.power)


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in sorted(reasons.items()))


def _power_text(power: dict[str, Any]) -> str:
    tests = power.get("tests") or {}
    if not tests:
        return "no reference, no labelled or keyed probes, no claim to test"
    return "; ".join(f"{n} {v['n']}/{v['needed'] or 'decision'}" for n, v in tests.items())


def record_verdict(ledger: Ledger, service_id: str, report_bytes: bytes,
                   verdict: str) -> dict[str, Any]:
    """Store the report; move the service to the bound ``audited`` state on a pass, to
    ``suspended`` on a fail; an ``inconclusive`` audit is stored and moves nothing."""
    digest = ledger.home.store.put(report_bytes)
    if verdict == "inconclusive":
        art = ledger.artefact(service_id)
        return {"service": art.id, "state": art.state, "report_digest": digest,
                "tx_hash": None, "block": None, "gas_used": None}
    state = ledger.lifecycle.bound_state("audit", "audited" if verdict == "pass" else "suspended")
    tx = ledger.transition(service_id, state, evidence_digest=digest)
    return {"service": service_id, "state": state, "report_digest": digest,
            "tx_hash": tx.tx_hash, "block": tx.block, "gas_used": tx.gas_used}
