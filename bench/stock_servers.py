"""Audits of a stock-MLServer-like v2 server (mltrail.testing.stock_v2): honest, and a
provider that substitutes only the default (label-only) answers, which customers who
never name ``predict_proba`` receive — never part of `make test`.

For each mode, N audits (one seed each: fresh probes and batch sizes drawn from it) of
at most Q queries, ad hoc, with the scikit-learn pipeline's skops card as reference,
α = 0.05. Prints one JSON object: verdicts per mode, the catch rate, honest false alarms,
and the requests each audit sent.

    .venv/bin/python bench/stock_servers.py [--seeds 20] [--queries 160]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--queries", type=int, default=160)
    args = ap.parse_args()

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mltrail.audit.models import ModelCard, digits
    from mltrail.audit.references import write_sklearn_reference
    from mltrail.audit.runner import AuditConfig, run_audit
    from mltrail.testing.stock_v2 import MODES, serve

    x, y, _, _ = digits()
    flat = x.reshape(len(x), -1)
    good = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(flat, y)
    cheap = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=500)
                          ).fit(flat[:300], y[:300])
    out: dict[str, Any] = {"bench": "stock_servers", "utc": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seeds": args.seeds, "queries": args.queries}
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "digits.skops"
        write_sklearn_reference(good, ModelCard(name="digits", format="skops", classes=10,
                                                input_shape=[64]), ref)
        for mode in MODES:
            srv = serve("digits", good.predict_proba, cheap.predict_proba, mode)
            verdicts, requests = [], []
            try:
                for seed in range(args.seeds):
                    rep = run_audit(AuditConfig(target=f"{srv.url}/v2/models/digits",
                                                model_path=str(ref), seed=seed,
                                                max_queries=args.queries))
                    verdicts.append(rep.verdict)
                    requests.append(rep.availability.requests)
            finally:
                srv.stop()
            out[mode] = {"verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
                         "fail_rate": verdicts.count("fail") / len(verdicts),
                         "requests_mean": sum(requests) / len(requests)}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
