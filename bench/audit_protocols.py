"""Issue 10's measurements: audits of services that speak other protocols, against
cheaters outside the recipe (mltrail.testing.audit_oip) — never part of `make test`.

For each cheater, N audits (one seed each: fresh probes and batch sizes drawn from it)
of at most 96 queries with ledger-style claims and the claimed model file as reference,
α = 0.05, stop at the first alarm; the verdicts and the queries to the first alarm. The
honest supplier (and the honest-but-reordered v2 answers) give the false-alarm rate.
The adapter-described TF-Serving-style route is audited the same way.

    .venv/bin/python bench/audit_protocols.py [--seeds N] [--quick]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from audit_adversaries import _claims, _serve, _setup  # noqa: E402


def _rate(verdicts: list[str], alarms: list[int | None]) -> dict[str, Any]:
    hit = [a for a in alarms if a is not None]
    return {"n": len(verdicts), "fail": verdicts.count("fail"), "pass": verdicts.count("pass"),
            "inconclusive": verdicts.count("inconclusive"),
            "detection_rate": verdicts.count("fail") / len(verdicts),
            "queries_to_alarm_median": float(np.median(hit)) if hit else None,
            "queries_to_alarm_max": max(hit) if hit else None}


def run(seeds: int) -> dict[str, Any]:
    from mltrail.audit.adapter import AdapterSpec
    from mltrail.audit.runner import AuditConfig, run_audit
    from mltrail.testing.audit_base import Cheat
    from mltrail.testing.audit_foreign import ADAPTERS
    from mltrail.testing.audit_oip import (
        HalfPrecision,
        OipSniffer,
        Reorder,
        RowRotate,
        SplitBrain,
    )

    tmp = Path(tempfile.mkdtemp())
    env = _setup(tmp)
    tf = AdapterSpec.model_validate({**ADAPTERS["tf"], "health": None})  # no such GET here
    cases: list[tuple[str, Any, str]] = [
        ("honest (v2)", Cheat, "oip"), ("reorder, FP32-declared (v2, honest)", Reorder, "oip"),
        ("splitbrain honest on /v1 (audit v2)", lambda: SplitBrain(honest_on="mltrail"), "oip"),
        ("splitbrain honest on v2 (audit adapter route)", lambda: SplitBrain(honest_on="oip"),
         "tf"),
        ("splitbrain honest on v2 (audit v2)", lambda: SplitBrain(honest_on="oip"), "oip"),
        ("oipsniffer (v2)", OipSniffer, "oip"), ("rowrotate (v2)", RowRotate, "oip"),
        ("halfprecision (v2)", HalfPrecision, "oip"), ("honest (adapter route)", Cheat, "tf"),
    ]
    out: dict[str, Any] = {"seeds": seeds, "max_queries": 96, "alpha": 0.05, "cases": {}}
    for name, make, route in cases:
        verdicts, alarms, sniffed = [], [], 0
        t0 = time.perf_counter()
        for seed in range(seeds):
            cheat = make()
            with _serve(env, cheat) as srv:
                url = f"{srv.url}/v2/models/digits-mlp" if route == "oip" else srv.url
                rep = run_audit(AuditConfig(
                    claims=_claims(env, url), model_path=str(env["path"]), max_queries=96,
                    seed=1000 + seed, stop_on_alarm=True,
                    adapter=tf if route == "tf" else None))
            verdicts.append(rep.verdict)
            alarms.append(rep.first_alarm_at)
            sniffed += sum(1 for e in cheat.log if e["audit_like"])
        out["cases"][name] = {**_rate(verdicts, alarms), "seconds": round(
            time.perf_counter() - t0, 1)}
        if name.startswith("oipsniffer"):
            out["cases"][name]["requests_flagged_as_audit"] = sniffed
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    print(json.dumps({"audit_protocols": run(3 if args.quick else args.seeds)}, indent=1))


if __name__ == "__main__":
    main()
