"""Measurements of the inference-service audit against cheating suppliers (called by
bench/audit.py; never part of `make test`).

* distances: nearest-public-sample distance per probe set against new data (AUC of a
  memorising provider's "small distance = probe" rule; 0.5 = cannot tell);
* cheaters: each cheating supplier of mltrail.testing.audit_* audited over many seeds with
  fresh probes and ledger-style claims: verdicts and queries to the first alarm; the
  honest supplier's false-alarm rate at alpha = 0.05;
* skimmer: a supplier that substitutes 2% of customers' requests and forwards every
  probe: alarms from probes alone, and clients' samples needed to catch it;
* submission_throughput: submissions per second through the auditor's inbox;
* probe_aucs: per probe source, the AUC of every detector (the audit's own families and
  mltrail.testing.audit_detector2's, out-of-fold and generator-trained), mean, 95% CI
  over seeds and max; the reference model's accuracy on each source (labels);
* dodges: catch rates of detecting, memorising, receipt-dropping and two-faced suppliers
  and the honest false-alarm rate;
* receipts_and_clients: receipt dropping, client recognition and lying clients through
  clients' submissions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ALPHA = 0.05
LATENCY = {"rate_qps": 20, "p95_ms": 300}


def _setup(tmp: Path) -> dict[str, Any]:
    import torch

    from mltrail.audit import models as M
    from mltrail.audit.receipts import load_or_create_key, public_key_b64
    from mltrail.reference import train_seeded

    torch.set_num_threads(1)
    cfg = {"seed": 1, "arch": {"type": "mlp", "hidden": [64]}, "epochs": 2}
    net, _ = train_seeded(cfg)
    net.eval()
    acc = M.accuracy_of(net, *M.digits()[2:])
    card = M.ModelCard(name="digits-mlp", arch=cfg["arch"], classes=10, seed_config=cfg,
                       claims=M.Claims(accuracy=round(int(acc * 100) / 100, 2),
                                       latency=M.LatencyClaim(**LATENCY)))
    path = tmp / "model.safetensors"
    digest = M.save_model(net, card, path)
    key = load_or_create_key(None)
    return {"net": net, "card": card, "digest": digest, "path": path, "key": key,
            "pub": public_key_b64(key.public_key()), "cheap": M.cheap_model()[0]}


def _serve(env: dict[str, Any], cheat: Any, card: Any = None) -> Any:
    from mltrail.audit.service import serve_in_thread
    from mltrail.testing.audit_base import build_app

    return serve_in_thread(build_app(cheat, env["net"], card or env["card"], env["digest"],
                                     env["key"], env["cheap"]))


def _claims(env: dict[str, Any], url: str, card: Any = None) -> Any:
    from mltrail.audit.claims import ServiceClaims

    return ServiceClaims.from_card(card or env["card"], model_digest=env["digest"],
                                   public_key=env["pub"], endpoint=url)


def distances(quick: bool) -> dict[str, Any]:
    from mltrail.audit import probes as P
    from mltrail.audit.fresh import distance_report
    from mltrail.audit.models import augment
    from mltrail.testing.audit_base import PublicIndex
    from mltrail.testing.audit_detector import Detector
    from mltrail.testing.audit_memoriser import Memoriser

    n = 200 if quick else 450
    rng = np.random.default_rng(0)
    bench = P.benchmark(n)
    aug = augment(bench.x, rng)
    containers = np.clip(aug + 0.15 * np.tanh(rng.normal(0, 1, aug.shape)), 0, 1)
    sets = {"benchmark": bench.x, "ordinary_augmented": aug,
            "container_like (bounded residual on augmented covers)":
                containers.astype(np.float32),
            "fresh": P.fresh(n, seed=123).x}
    rep = distance_report(sets, n_new=None)
    mem, det = Memoriser(), Detector()
    idx = PublicIndex.get()
    new_x = idx.public
    rep["memoriser_threshold"] = mem.threshold
    for name, xs in sets.items():
        rep[name]["memoriser_forwards"] = float(mem.decide(xs, None, 0.0).genuine.mean())
        rep[name]["detector_flags"] = float(det.is_probe(xs).mean())
    rep["new_data"]["memoriser_forwards"] = float(
        (idx.distance(new_x, skip_self=True) < mem.threshold).mean())
    rep["new_data"]["detector_flags_leave_one_out"] = float(
        det.model.predict(_det_features(new_x)).mean())
    return rep


def _det_features(x: np.ndarray) -> np.ndarray:
    from mltrail.testing.audit_base import PublicIndex
    from mltrail.testing.audit_detector import features

    return features(x, PublicIndex.get(), skip_self=True)


def _run(env: dict[str, Any], claims: Any, seed: int, **kw: Any) -> Any:
    from mltrail.audit.runner import AuditConfig, run_audit

    return run_audit(AuditConfig(claims=claims, model_path=str(env["path"]), seed=seed,
                                 stop_on_alarm=True, **kw))


def cheaters(quick: bool) -> dict[str, Any]:
    from mltrail.audit.models import Claims
    from mltrail.testing.audit_base import Cheat
    from mltrail.testing.audit_detector import Detector
    from mltrail.testing.audit_memoriser import Memoriser
    from mltrail.testing.audit_refuser import Refuser
    from mltrail.testing.audit_slowpoke import Slowpoke
    from mltrail.testing.audit_stripper import Stripper

    seeds = 5 if quick else 20
    honest_seeds = 20 if quick else 100
    cap = 200
    out: dict[str, Any] = {"alpha": ALPHA, "max_queries": cap, "probes": "fresh",
                           "reference": "claimed model file"}
    with tempfile.TemporaryDirectory() as tmp:
        env = _setup(Path(tmp))
        stripped = env["card"].model_copy(update={"seed_config": None, "claims": Claims()})
        cases: list[tuple[str, Any, Any, int]] = [
            ("memoriser", Memoriser(), None, seeds),
            ("detector", Detector(), None, seeds),
            ("stripper (ledger holds the true claims)", Stripper(), None, seeds),
            ("stripper (operator registered stripped claims)", Stripper(), stripped, seeds),
            ("slowpoke (0.6 s for non-audit traffic; claim p95 300 ms)",
             Slowpoke(delay_s=0.6), None, seeds),
            ("refuser", Refuser(), None, seeds),
            ("honest", Cheat(), None, honest_seeds)]
        for name, cheat, card, n in cases:
            srv = _serve(env, cheat)
            claims = _claims(env, srv.url, card)
            verdicts: dict[str, int] = {}
            alarms = []
            t = time.perf_counter()
            for seed in range(n):
                # stripped claims name no seed config and no reference: nothing to compare
                rep = _run(env, claims, 1000 + seed, max_queries=cap) if card is None \
                    else _run_plain(claims, 1000 + seed, cap)
                verdicts[rep.verdict] = verdicts.get(rep.verdict, 0) + 1
                if rep.verdict == "fail":
                    alarms.append(rep.first_alarm_at or 0)
            srv.stop()
            out[name] = {"seeds": n, "verdicts": verdicts,
                         "caught_rate": verdicts.get("fail", 0) / n,
                         "queries_to_alarm_median": float(np.median(alarms)) if alarms else None,
                         "queries_to_alarm_max": int(max(alarms)) if alarms else None,
                         "wall_s": round(time.perf_counter() - t, 1)}
        out["honest_false_alarm_rate"] = out["honest"]["verdicts"].get("fail", 0) / honest_seeds
    return out


def _run_plain(claims: Any, seed: int, cap: int) -> Any:
    from mltrail.audit.runner import AuditConfig, run_audit

    return run_audit(AuditConfig(claims=claims, seed=seed, max_queries=cap,
                                 stop_on_alarm=True))


def skimmer(quick: bool, fraction: float = 0.02) -> dict[str, Any]:
    """Samples (every exchange sampled here; divide by the sampling rate for traffic)."""
    from mltrail.audit import probes as P
    from mltrail.audit.runner import AuditConfig, run_audit
    from mltrail.audit.traffic import SamplingClient
    from mltrail.testing.audit_base import Cheat
    from mltrail.testing.audit_skimmer import Skimmer

    seeds = 5 if quick else 20
    n_req = 600 if quick else 1000
    sid = "0x" + "cd" * 32
    caught_at: list[float] = []
    probe_alarms = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = _setup(Path(tmp))
        audited = _serve(env, Cheat())
        claims = _claims(env, audited.url)
        for seed in range(seeds):
            srv = _serve(env, Skimmer(fraction=fraction, seed=seed))
            client = SamplingClient(srv.url, sid, rate=1.0)
            x = P.fresh(n_req, seed=5000 + seed).x
            rng = np.random.default_rng(seed)
            i = 0
            while i < n_req:
                k = int(rng.integers(1, 5))
                client.classify(x[i:i + k])
                i += k
            subs = list(client.sample)
            client.close()
            srv.stop()
            probes_rep = run_audit(AuditConfig(claims=claims, model_path=str(env["path"]),
                                               seed=seed, max_queries=500))
            probe_alarms += probes_rep.verdict == "fail"
            rep = run_audit(AuditConfig(claims=claims, model_path=str(env["path"]), seed=seed,
                                        max_queries=1, traffic=subs))
            at = rep.sequential.get("traffic_distribution", {}).get("rejected_at_query")
            if at is None:
                caught_at.append(float("inf"))
                continue
            seen = 0
            for j, s in enumerate(subs, 1):
                seen += len(s.request.inputs)
                if seen >= at:
                    caught_at.append(float(j))
                    break
        audited.stop()
    arr = np.array(caught_at)
    fin = arr[np.isfinite(arr)]
    return {"fraction_substituted": fraction, "seeds": seeds, "requests_per_seed": n_req,
            "probe_only_audits_500_queries_caught": probe_alarms,
            "samples_to_catch_median": float(np.median(fin)) if len(fin) else None,
            "samples_to_catch_p90": float(np.percentile(fin, 90)) if len(fin) else None,
            "caught_within_requests": float(np.isfinite(arr).mean()),
            "traffic_needed_at_1pct_sampling_median": float(np.median(fin)) * 100
            if len(fin) else None,
            "expected_by_geometry": 1 / fraction}


def submission_throughput(quick: bool) -> dict[str, Any]:
    from mltrail.audit.service import serve_in_thread
    from mltrail.audit.traffic import SamplingClient, create_inbox_app, submit
    from mltrail.testing.audit_base import Cheat

    n = 500 if quick else 2000
    sid = "0x" + "ef" * 32
    with tempfile.TemporaryDirectory() as tmp:
        env = _setup(Path(tmp))
        srv = _serve(env, Cheat())
        client = SamplingClient(srv.url, sid, rate=1.0)
        from mltrail.audit import probes as P

        x = P.fresh(64, seed=1).x
        t = time.perf_counter()
        for i in range(min(n, 400)):
            client.classify(x[i % 64: i % 64 + 1])
        client_s = (time.perf_counter() - t) / min(n, 400)
        subs = (client.sample * (n // len(client.sample) + 1))[:n]
        client.close()
        srv.stop()
        with serve_in_thread(create_inbox_app(Path(tmp) / "inbox",
                                              {sid: (env["pub"], env["digest"])})) as inbox:
            t = time.perf_counter()
            res = submit(inbox.url, subs)
            dt = time.perf_counter() - t
    return {"submissions": n, "accepted": res["accepted"],
            "submissions_per_s": n / dt, "inputs_per_submission": 1,
            "client_request_ms_incl_sampling": client_s * 1000}


# ---- probes a provider cannot tell from traffic; receipts not optional ----

SOURCES = ("auditor-held", "fresh", "fresh, strength 1.0", "benchmark",
           "augmented public (keyed-kit covers)")
GROUPS = 5     # provider detectors trained per feature family (seed mod GROUPS)


def _probe_source(name: str, n: int, seed: int) -> Any:
    from mltrail.audit import probes as P
    from mltrail.audit.heldout import public_heldout
    from mltrail.audit.models import augment

    if name == "auditor-held":
        return P.held(n, seed)
    if name == "fresh":
        return P.fresh(n, seed)
    if name == "fresh, strength 1.0":
        return P.fresh(n, seed, strength=1.0)
    if name == "benchmark":
        return P.benchmark(n, seed)
    x, y = public_heldout()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), n)
    return P.ProbeSet(augment(x[idx], rng), y[idx], np.full(n, P.ORDINARY, np.int8),
                      {"source": "keyed", "provenance": "public-derived"})


def _summary(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, dtype=np.float64)
    half = 1.96 * a.std(ddof=1) / np.sqrt(len(a)) if len(a) > 1 else 0.0
    return {"mean": round(float(a.mean()), 3), "ci95": [round(float(a.mean() - half), 3),
                                                        round(float(a.mean() + half), 3)],
            "max": round(float(a.max()), 3)}


def _genuine(n: int, seed: int, probes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` public-benchmark digits that are not among ``probes`` (never in any
    detector's training set here) and their nearest-public distances, leave-one-out."""
    from mltrail.audit.distinguish import _near
    from mltrail.audit.heldout import public_heldout
    from mltrail.audit.models import digits

    x, _ = public_heldout()
    sent = {r.tobytes() for r in probes.astype(x.dtype)}
    free = np.array([i for i in range(len(x)) if x[i].tobytes() not in sent])
    idx = np.random.default_rng(seed).choice(free, min(n, len(free)), replace=False)
    return x[idx], _near().distance(x[idx], exclude=idx + len(digits()[0]))


def probe_aucs(quick: bool) -> dict[str, Any]:
    """Per probe source, over seeds: every detector's AUC separating the probes from
    genuine digits none of the detectors was trained on."""
    import torch

    from mltrail.audit.distinguish import _generator_of, adversarial_validation
    from mltrail.audit.models import digits, predict
    from mltrail.reference import train_seeded
    from mltrail.testing.audit_detector2 import KINDS, oof_auc, train_detector

    seeds, n = (4, 100) if quick else (20, 100)
    torch.set_num_threads(1)
    net, _ = train_seeded({"seed": 1, "arch": {"type": "mlp", "hidden": [64]}, "epochs": 2})
    net.eval()
    t = time.perf_counter()
    train_pool = digits()[:2]       # the providers' detectors never see the benchmark
    provider = {k: [train_detector(k, g, net, pool=train_pool) for g in range(GROUPS)]
                for k in KINDS}
    out: dict[str, Any] = {
        "seeds": seeds, "probes_per_seed": n,
        "genuine": f"{n} of the 150 public-benchmark digits per seed, none of them a probe "
                   "(50 for benchmark probes); leave-one-out distances; no provider "
                   "detector was trained on them",
        "provider_detectors_train_s": round(time.perf_counter() - t, 1)}
    for src in SOURCES:
        fams: dict[str, list[float]] = {}
        flagged, acc = 0, []
        t = time.perf_counter()
        for seed in range(seeds):
            pr = _probe_source(src, n, 500 + seed)
            g, gd = _genuine(n, 700 + seed, pr.x)
            av = adversarial_validation(pr.x, g, genuine_distance=gd, seed=seed,
                                        generator=_generator_of(pr))
            flagged += bool(av["detectable"])
            found = {f"audit: {k}": v for k, v in av["auc"].items()}
            found["audit: best"] = av["best"]
            y = np.r_[np.ones(len(pr.x)), np.zeros(len(g))]
            for k in KINDS:
                found[f"{k}, out-of-fold"] = oof_auc(k, pr.x, g, seed, net)
                det = provider[k][seed % GROUPS]
                sc = det.predict_proba(_features(k, np.concatenate([pr.x, g]), net))[:, 1]
                found[f"{k}, generator-trained"] = _auc(y, sc)
            for k, v in found.items():
                fams.setdefault(k, []).append(v)
            acc.append(float((predict(net, pr.x).argmax(1) == pr.y).mean()))
        out[src] = {"auc": {k: _summary(v) for k, v in fams.items()},
                    "flagged_detectable": f"{flagged}/{seeds}",
                    "reference_accuracy_on_labels": _summary(acc),
                    "wall_s": round(time.perf_counter() - t, 1)}
    return out


def _features(kind: Any, x: np.ndarray, net: Any) -> np.ndarray:
    from mltrail.testing.audit_detector2 import features

    return features(kind, x, net)


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def _verdicts(reps: list[Any]) -> dict[str, Any]:
    v: dict[str, int] = {}
    for r in reps:
        v[r.verdict] = v.get(r.verdict, 0) + 1
    n = len(reps)
    return {"seeds": n, "verdicts": v, "passed_rate": v.get("pass", 0) / n,
            "caught_rate": v.get("fail", 0) / n}


def dodges(quick: bool) -> dict[str, Any]:
    """Audits (64 queries, stop at the first alarm) of detecting, memorising, receipt-
    dropping and two-faced suppliers; honest suppliers for false alarms and verdicts.
    Audits of cheaters skip the adversarial validation (it can demote a pass to
    inconclusive, never make or unmake a fail)."""
    from mltrail.testing.audit_base import Cheat
    from mltrail.testing.audit_detector2 import Detector2
    from mltrail.testing.audit_dodger import Dodger
    from mltrail.testing.audit_memoriser import Memoriser
    from mltrail.testing.audit_twofaced import TwoFaced

    seeds, honest_seeds, cap = (5, 10, 64) if quick else (20, 60, 64)
    out: dict[str, Any] = {"alpha": ALPHA, "max_queries": cap, "stop_on_alarm": True}
    with tempfile.TemporaryDirectory() as tmp:
        env = _setup(Path(tmp))
        dodger = Dodger(seed=99, drop=False)
        pixels = Detector2(kind="pixels", seed=98)
        clients = {f"127.0.0.{i + 2}" for i in range(4)}
        cases: list[tuple[str, Any, str, int, bool]] = [
            ("honest, auditor-held probes", Cheat(), "auditor-held", honest_seeds, True),
            ("honest, fresh probes", Cheat(), "fresh", seeds, True),
            ("profile-forest detector (audit_dodger), auditor-held probes", dodger,
             "auditor-held", seeds, False),
            ("profile-forest detector (audit_dodger), fresh probes", dodger, "fresh", seeds,
             False),
            ("raw-pixel boosting detector (audit_detector2), fresh probes", pixels, "fresh",
             seeds, False),
            ("co-occurrence detector (audit_detector2), fresh probes",
             Detector2(kind="cooccurrence", seed=97), "fresh", seeds, False),
            ("embedding kNN detector (audit_detector2), fresh probes",
             Detector2(kind="embedding", seed=96, net=env["net"]), "fresh", seeds, False),
            ("raw-pixel detector + receipt dropping, fresh probes",
             Detector2(kind="pixels", drop=True, model=pixels.model), "fresh", seeds, False),
            ("profile-forest detector + receipt dropping, auditor-held probes",
             Dodger(seed=99, drop=True, model=dodger.model), "auditor-held", seeds, False),
            ("memoriser, benchmark probes", Memoriser(), "benchmark", seeds, True),
            ("memoriser, keyed-kit-style probes (public covers)", Memoriser(),
             "augmented public (keyed-kit covers)", seeds, True),
            ("memoriser, auditor-held probes", Memoriser(), "auditor-held", seeds, False),
            ("memoriser, fresh probes", Memoriser(), "fresh", seeds, False),
            ("client recognition + memoriser (audit_twofaced), benchmark probes",
             TwoFaced(known=clients), "benchmark", seeds, True),
            ("client recognition + memoriser (audit_twofaced), auditor-held probes",
             TwoFaced(known=clients), "auditor-held", seeds, False)]
        for name, cheat, src, n, check in cases:
            srv = _serve(env, cheat)
            claims = _claims(env, srv.url)
            t = time.perf_counter()
            reps = [_run(env, claims, 2000 + s, probes=_probe_source(src, cap, 900 + s),
                         max_queries=cap, probe_check=check) for s in range(n)]
            srv.stop()
            out[name] = {**_verdicts(reps), "wall_s": round(time.perf_counter() - t, 1),
                         "missing_receipt_fails": sum(r.failed("receipts") for r in reps)}
        honest = out["honest, auditor-held probes"]
        out["honest_false_alarm_rate"] = honest["verdicts"].get("fail", 0) / honest["seeds"]
    return out


def _customers(url: str, env: dict[str, Any], n: int, requests: int, seed: int,
               addresses: list[str] | None = None) -> list[Any]:
    from mltrail.audit import probes as P
    from mltrail.audit.traffic import SamplingClient
    from mltrail.testing.audit_recogniser import send_from

    x = P.held(300, seed).x
    out = []
    for c in range(n):
        cl = SamplingClient(url, SID, rate=0.5, public_key=env["pub"],
                            model_digest=env["digest"], client_id=f"client-{c}")
        if addresses:
            send_from(cl, addresses[c])
        for i in range(requests):
            j = (c * requests + i) * 2 % 298
            cl.classify(x[j:j + 2])
        cl.close()
        out.append(cl)
    return out


SID = "0x" + "19" * 32


def receipts_and_clients(quick: bool) -> dict[str, Any]:
    """Receipt dropping, client recognition and lying clients, through SamplingClients
    and the auditor's traffic checks (quorum 3, alpha 0.05)."""
    from mltrail.audit.runner import AuditConfig, run_audit
    from mltrail.testing.audit_base import Cheat
    from mltrail.testing.audit_dropper import Dropper
    from mltrail.testing.audit_liars import fabricate, strip_and_alter
    from mltrail.testing.audit_recogniser import Recogniser
    from mltrail.testing.audit_twofaced import TwoFaced

    seeds, k, reqs = (5, 4, 10) if quick else (20, 4, 10)
    addrs = [f"127.0.0.{i + 2}" for i in range(k)]
    out: dict[str, Any] = {"clients": k, "requests_each": reqs, "sampling_rate": 0.5,
                           "quorum": 3, "alpha": ALPHA}
    with tempfile.TemporaryDirectory() as tmp:
        env = _setup(Path(tmp))
        honest = _serve(env, Cheat())
        claims = _claims(env, honest.url)

        def audit(subs: list[Any], seed: int) -> Any:
            return run_audit(AuditConfig(claims=claims, model_path=str(env["path"]),
                                         seed=seed, max_queries=16, traffic=subs,
                                         probe_check=False))

        def caught(r: Any) -> bool:
            return bool(r.failed("missing_receipts") or r.failed("traffic_identity")
                        or r.failed("traffic_distribution"))

        cases: dict[str, Any] = {
            "receipt dropper (substitutes 20%, unsigned)": lambda s: Dropper(fraction=0.2, seed=s),
            "recogniser by address (knows every submitter)":
                lambda s: Recogniser(by="address", known=set(addrs), seed=s),
            "recogniser by address (knows all submitters but one)":
                lambda s: Recogniser(by="address", known=set(addrs[1:]), seed=s),
            "recogniser by nonce style (submitters use the library's 32-hex nonces)":
                lambda s: Recogniser(by="nonce", seed=s),
            "client recognition + memoriser (knows all submitters but one)":
                lambda s: TwoFaced(known=set(addrs[1:]))}
        for name, make in cases.items():
            hits, t = 0, time.perf_counter()
            for s in range(seeds):
                srv = _serve(env, make(s))
                cl = _customers(srv.url, env, k, reqs, 40 + s,
                                addrs if "address" in name or "recognition" in name else None)
                srv.stop()
                hits += caught(audit([x for c in cl for x in c.sample], 3000 + s))
            out[name] = {"seeds": seeds, "caught_rate": hits / seeds,
                         "wall_s": round(time.perf_counter() - t, 1)}
        drop_self = _serve(env, Dropper(fraction=0.2, seed=1))
        reps = [run_audit(AuditConfig(claims=_claims(env, drop_self.url),
                                      model_path=str(env["path"]), seed=4000 + s,
                                      max_queries=64, probe_check=False))
                for s in range(seeds)]
        drop_self.stop()
        out["receipt dropper, auditor's own probes"] = {
            "seeds": seeds, "caught_rate": sum(r.failed("receipts") for r in reps) / seeds}
        for liars in (2, 3):
            alarms = 0
            for s in range(seeds):
                rng = np.random.default_rng(s)
                subs = [x for c in _customers(honest.url, env, k, reqs, 60 + s) for x in c.sample]
                lies = [strip_and_alter(x, rng, f"liar-{i}") for i in range(liars)
                        for x in subs[:3]]
                lies += [fabricate(SID, _probe_source("auditor-held", 2, s).x, rng,
                                   client=f"liar-{i}") for i in range(liars)]
                alarms += caught(audit(subs + lies, 5000 + s))
            out[f"honest provider, {liars} lying clients"] = {
                "seeds": seeds, "false_alarm_rate": alarms / seeds}
        honest.stop()
    return out


def oracle_split_brain(quick: bool) -> dict[str, Any]:
    """bench/oracle.py's split-brain measurement (one honest oracle's audit per seed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_oracle",
                                                  Path(__file__).with_name("oracle.py"))
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return dict(mod.split_brain(5 if quick else 20))
