"""Benchmarks of the inference-service audit (never part of `make test`); prints JSON.

Targets (issue 4): median queries to detect 5% label disagreement at alpha=0.05 with
power >= 0.95 (<= 100; fixed-sample bound 59); expected queries to detect an accuracy
drop 0.92 -> 0.88 (<= 320; fixed-sample exact test 613); auditor throughput against the
local reference service (>= 300 q/s); receipt sign + verify per response (<= 0.3 ms).
Also: false-alarm rates under H0 and stego-probe visibility (PSNR, detector AUC).

bench/audit_adversaries.py measures the audit against cheating suppliers: nearest-public
distances, verdicts per cheater, the 2% skimmer, submission throughput (--all), and by
default: detector AUCs per probe source with 95% CIs over seeds (probe_aucs), catch rates
of detecting, memorising, receipt-dropping and two-faced suppliers and honest false
alarms (dodges), receipt dropping, client recognition and lying clients through clients'
submissions (receipts_and_clients), and bench/oracle.py's split-brain providers
(oracle_split_brain); >= 20 seeds each.

    .venv/bin/python bench/audit.py [--quick] [--all | --only NAME[,NAME]] [--out FILE]
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHA = 0.05


def identity_detection(runs: int = 20000, cap: int = 100) -> dict[str, float]:
    from mltrail.audit.stats import mixture_log_wealth

    rng = np.random.default_rng(0)
    x = (rng.random((runs, cap)) < 0.05).astype(float)
    hit = mixture_log_wealth(x, 0.0, ALPHA) >= math.log(1 / ALPHA)
    stop = np.where(hit.any(-1), hit.argmax(-1) + 1, np.inf)
    return {"disagreement": 0.05, "alpha": ALPHA, "cap": cap,
            "median_queries": float(np.median(stop)), "power_at_cap": float(hit.any(-1).mean()),
            "power_at_59": float((stop <= 59).mean()), "fixed_sample_n": 59, "target": 100}


def accuracy_drop(runs: int = 20000, beta: float = 0.05) -> dict[str, float]:
    from mltrail.audit.stats import fixed_sample_size, sprt_stop_times

    rng = np.random.default_rng(1)
    err = rng.random((runs, 3000)) < 0.12   # true accuracy 0.88
    n, rej = sprt_stop_times(err, 0.08, 0.12, ALPHA, beta)
    h0 = rng.random((runs, 3000)) < 0.08    # true accuracy 0.92 (the claim)
    n0, rej0 = sprt_stop_times(h0, 0.08, 0.12, ALPHA, beta)
    return {"claimed": 0.92, "true": 0.88, "alpha": ALPHA, "beta": beta,
            "expected_queries": float(n.mean()), "median_queries": float(np.median(n)),
            "power": float(rej.mean()), "expected_queries_under_h0": float(n0.mean()),
            "false_alarm_rate": float(rej0.mean()),
            "fixed_sample_n": fixed_sample_size(0.92, 0.88, ALPHA, 0.95), "target": 320}


def false_alarms(runs: int = 10000, n: int = 500) -> dict[str, float]:
    from mltrail.audit.stats import mixture_log_wealth

    rng = np.random.default_rng(2)
    out = {}
    for m0 in (0.01, 0.05, 0.5):
        x = (rng.random((runs, n)) < m0).astype(float)
        out[f"betting_m0={m0}"] = float((mixture_log_wealth(x, m0, ALPHA) >=
                                         math.log(1 / ALPHA)).any(-1).mean())
    return {"alpha": ALPHA, "runs": runs, "queries_each": n, **out}


def receipts(iters: int = 3000) -> dict[str, float]:
    from mltrail.audit.receipts import (
        ReceiptVerifier,
        load_or_create_key,
        load_public_key,
        public_key_b64,
        sign_receipt,
    )

    key = load_or_create_key(None)
    ver = ReceiptVerifier(load_public_key(public_key_b64(key.public_key())), "sha256:" + "a" * 64)
    batch = np.random.default_rng(0).random((16, 1, 8, 8)).astype(np.float32)
    outputs = [{"label": 1, "probs": list(np.random.default_rng(i).dirichlet(np.ones(10)))}
               for i in range(16)]
    t = time.perf_counter()
    for i in range(iters):
        r = sign_receipt(key, model_digest="sha256:" + "a" * 64, batch=batch, outputs=outputs,
                         nonce=str(i))
        assert ver.check(r, batch=batch, outputs=outputs, nonce=str(i)).ok
    per = (time.perf_counter() - t) / iters * 1000
    pub = key.public_key()
    t = time.perf_counter()
    for _ in range(iters):
        pub.verify(key.sign(b"x" * 300), b"x" * 300)
    raw = (time.perf_counter() - t) / iters * 1000
    return {"batch": 16, "sign_plus_verify_ms_per_response": per,
            "raw_ed25519_sign_plus_verify_ms": raw, "target_ms": 0.3}


def throughput(tmp: Path) -> dict[str, float]:
    from mltrail.audit import probes as P
    from mltrail.audit.models import Claims, ModelCard, save_model
    from mltrail.audit.runner import AuditConfig, run_audit
    from mltrail.reference import train_seeded

    cfg = {"seed": 1, "arch": {"type": "mlp", "hidden": [64]}, "epochs": 2}
    net, _ = train_seeded(cfg)
    path = tmp / "model.safetensors"
    save_model(net, ModelCard(arch=cfg["arch"], classes=10, claims=Claims(accuracy=0.9)), path)
    port_file = tmp / "port"
    proc = subprocess.Popen([sys.executable, "-m", "mltrail.cli.main", "serve-model", str(path),
                             "--port", "0", "--port-file", str(port_file)],
                            stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        bench = P.benchmark()
        probes = P.ProbeSet(np.tile(bench.x, (4, 1, 1, 1)), np.tile(bench.y, 4),
                            np.tile(bench.kind, 4))
        out = {}
        for bs in (16, 32, 64):
            t = time.perf_counter()
            rep = run_audit(AuditConfig(target=url, probes=probes, model_path=str(path),
                                        batch_size=bs, fixed_batch=True))
            dt = time.perf_counter() - t
            assert rep.verdict == "pass", rep.findings
            out[f"queries_per_s_batch{bs}"] = rep.queries / dt
        out["queries"] = float(len(probes))
        out["target"] = 300.0
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def stego(steps: int, adversarial: float = 0.0) -> dict[str, float]:
    from mltrail.audit.stego import detector_auc, train_stego_model
    from mltrail.reference import pinned_threads

    t = time.perf_counter()
    with pinned_threads(1):
        _, kit, metrics = train_stego_model(b"bench-key", steps=steps, adversarial=adversarial)
        metrics["train_s"] = time.perf_counter() - t
        return {**metrics, **detector_auc(kit), "steps": steps, "adversarial": adversarial}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import audit_adversaries as A

    quick = "--quick" in sys.argv
    only = None
    if "--only" in sys.argv:
        only = set(sys.argv[sys.argv.index("--only") + 1].split(","))
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            "identity_5pct": lambda: identity_detection(4000 if quick else 20000),
            "accuracy_092_to_088": lambda: accuracy_drop(4000 if quick else 20000),
            "accuracy_092_to_088_beta_0.04": lambda: accuracy_drop(4000 if quick else 20000,
                                                                   0.04),
            "false_alarm_under_h0": lambda: false_alarms(2000 if quick else 10000),
            "receipts": lambda: receipts(500 if quick else 3000),
            "throughput": lambda: throughput(Path(tmp)),
            "stego": lambda: stego(300 if quick else 600),
            "stego_adversarial_1.0": lambda: stego(300 if quick else 600, 1.0),
            "nearest_public_distance": lambda: A.distances(quick),
            "cheaters": lambda: A.cheaters(quick),
            "skimmer_2pct": lambda: A.skimmer(quick),
            "submission_throughput": lambda: A.submission_throughput(quick),
            "probe_aucs": lambda: A.probe_aucs(quick),
            "dodges": lambda: A.dodges(quick),
            "receipts_and_clients": lambda: A.receipts_and_clients(quick),
            "oracle_split_brain": lambda: A.oracle_split_brain(quick),
        }
        if only is None and "--all" not in sys.argv:   # the threat-model table by default
            only = {"probe_aucs", "dodges", "receipts_and_clients", "oracle_split_brain"}
        t0 = time.perf_counter()
        res: dict[str, object] = {
            "_run": {"started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "command": "bench/audit.py " + " ".join(sys.argv[1:])}}
        for name, job in jobs.items():
            if only is None or name in only:
                t = time.perf_counter()
                res[name] = job()
                print(f"{name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        res["_run"]["wall_s"] = round(time.perf_counter() - t0, 1)  # type: ignore[index]
    text = json.dumps(res, indent=2)
    if "--out" in sys.argv:
        Path(sys.argv[sys.argv.index("--out") + 1]).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
