"""Clients' submitted exchanges as evidence: signed answers, unsigned answers, and the
missing-receipt test.

Owns what the auditor does with clients' submissions (:func:`check_traffic`): each
answered submission's receipt is verified against the ledger key; a signed answer is
recomputed with the reference and feeds the ``traffic_*`` identity tests; an answer
**without a valid receipt** from a service whose claims say it signs is a finding — it
proves nothing on its own (anyone can type an unsigned answer), so it is compared with
the genuine model (the reference re-queried on the submitted input) and counted per
client, and :func:`missing_receipt_test` turns the counts into a test with a stated
false-alarm rate that a few lying clients cannot trip:

* with a tolerance m0 > 0 the rate is estimated only from exchanges the clients *drew*
  into their random sample (``sampled``), never from the unsigned findings they always
  forward; with m0 = 0 (the default: a service that signs signs every answer) any
  unsigned answer a client saw counts;
* per client, an exact binomial test of H0: missing rate ≤ ``m0``; the provider is
  flagged when at least ``quorum`` distinct clients reject (each at α/(2·clients));
* overall, the same test on the pooled sample **after removing the quorum − 1 clients
  with the most unsigned answers** (at α/2).

If the provider's true rate is ≤ m0 and at most quorum − 1 clients lie, every rejection
needs an honest client's test to err: P(false alarm) ≤ α (union bound). Client ids must
be identities the auditor can tell apart (accounts it issued or ledger identities): a
liar who makes up quorum identities defeats any such rule. It never queries the audited
service and never decides the verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mltrail.audit.receipts import ReceiptVerifier
from mltrail.audit.result import Findings
from mltrail.audit.stats import binomial_exact
from mltrail.audit.traffic import Submission

QUORUM = 3          # distinct clients that must each show unsigned answers
ANON = "(no client id)"


def missing_receipt_test(counts: dict[str, tuple[int, int]], alpha: float, *,
                         m0: float = 0.0, quorum: int = QUORUM) -> dict[str, Any]:
    """``counts`` maps a client to (sampled answered exchanges, unsigned among them)."""
    clients = {c: v for c, v in counts.items() if v[0] > 0}
    a_client = alpha / (2 * max(1, len(clients)))
    per = {}
    for c, (n, u) in clients.items():
        p = binomial_exact(u, n, m0, "greater") if m0 > 0 else (0.0 if u else 1.0)
        per[c] = {"answered": n, "unsigned": u, "p_value": p, "rejects": p <= a_client}
    rejecting = sorted(c for c, v in per.items() if v["rejects"])
    trimmed = sorted(clients, key=lambda c: clients[c][1], reverse=True)[quorum - 1:]
    n_all = sum(clients[c][0] for c in trimmed)
    u_all = sum(clients[c][1] for c in trimmed)
    p_all = binomial_exact(u_all, n_all, m0, "greater") if m0 > 0 else (
        0.0 if u_all else 1.0)
    overall = {"answered": n_all, "unsigned": u_all, "p_value": p_all,
               "rejects": bool(n_all) and p_all <= alpha / 2,
               "dropped_clients": max(0, len(clients) - len(trimmed))}
    return {"m0": m0, "quorum": quorum, "alpha": alpha, "alpha_per_client": a_client,
            "clients": per, "clients_rejecting": rejecting, "overall": overall,
            "rejected": len(rejecting) >= quorum or overall["rejects"],
            "rate": (sum(v[1] for v in clients.values())
                     / max(1, sum(v[0] for v in clients.values())))}


def check_traffic(traffic: list[Submission], ref_outputs: Any, exact: Any, bank: Any,
                  verifier: ReceiptVerifier | None, claimed: dict[str, Any], fs: Findings,
                  *, signs: bool = False, alpha: float = 0.05, m0: float = 0.0,
                  quorum: int = QUORUM, vouched: list[Submission] | None = None
                  ) -> dict[str, Any]:
    """Clients' samples: receipts, recomputed answers, the traffic_* tests, latency, and
    (when the claims say the service signs) the missing-receipt test. ``vouched`` gets
    the answered samples whose input the provider's receipt vouches for (every answered
    sample when no receipt key is known): the only submitted inputs the auditor may take
    as genuine traffic, since anyone can type an unsigned one."""
    from mltrail.audit.client import check_outputs
    from mltrail.audit.models import INPUT_SHAPE

    shape = tuple(claimed.get("input_shape") or INPUT_SHAPE)
    out: dict[str, Any] = {"submitted": len(traffic), "answered": 0, "failed_reported": 0,
                           "invalid_receipts": 0, "unusable": 0, "checked_inputs": 0,
                           "unsigned": 0, "unsigned_differ": 0, "mismatch_examples": []}
    counts: dict[str, list[int]] = {}
    lat: list[float] = []
    seen = 0
    for s in traffic:
        if s.status != 200:
            out["failed_reported"] += 1
            continue
        try:
            batch = s.batch(shape)
        except ValueError:
            out["unusable"] += 1
            continue
        resp = s.response or {}
        outputs = resp.get("outputs")
        if check_outputs(outputs, len(batch), claimed.get("classes")):
            out["unusable"] += 1
            continue
        assert isinstance(outputs, list)
        out["answered"] += 1
        lat.append(s.latency_ms)
        labels = np.array([o["label"] for o in outputs])
        probs = np.array([o["probs"] for o in outputs], dtype=np.float64)
        row = counts.setdefault(s.client or ANON, [0, 0])
        row[0] += int(s.sampled)
        if verifier is not None:
            chk = verifier.check(resp.get("receipt"), batch=batch, outputs=outputs,
                                 nonce=s.request.nonce, sent_at=s.sent_at_ms / 1000)
            if not chk.ok:
                out["invalid_receipts"] += 1
                out["unsigned"] += 1
                # with m0 = 0 an honest provider leaves no unsigned answer at all, so every
                # finding counts; otherwise only the random draw estimates the rate
                row[1] += int(s.sampled or m0 == 0)
                refo = ref_outputs(batch)   # the genuine model, re-queried on the input
                if refo is not None and (np.any(labels != refo[0]) or probs.shape !=
                                         refo[1].shape or
                                         float(np.abs(probs - refo[1]).max()) > 1e-3):
                    out["unsigned_differ"] += 1
                continue  # an unsigned answer proves nothing about the provider
        if vouched is not None:
            vouched.append(s)
        refo = ref_outputs(batch)
        if refo is None:
            continue
        for i in range(len(batch)):
            seen += 1
            bank.pair("traffic_", int(labels[i]), probs[i], int(refo[0][i]), refo[1][i], seen)
            if int(labels[i]) != int(refo[0][i]) and len(out["mismatch_examples"]) < 5:
                out["mismatch_examples"].append({"sent_at_ms": s.sent_at_ms,
                                                 "nonce": s.request.nonce,
                                                 "got": int(labels[i]),
                                                 "reference": int(refo[0][i])})
    out["checked_inputs"] = seen
    if lat:
        arr = np.array(lat)
        out |= {f"latency_p{p}_ms": float(np.percentile(arr, p)) for p in (50, 95, 99)}
    if signs and verifier is not None:
        test = missing_receipt_test({c: (v[0], v[1]) for c, v in counts.items()}, alpha,
                                    m0=m0, quorum=quorum)
        out["missing_receipts"] = test
        if test["rejected"]:
            fs.add("fail", "missing_receipts", f"the claims say the service signs, but "
                   f"{len(test['clients_rejecting'])} client(s) independently saw answers "
                   f"without a valid receipt (rate {test['rate']:.3f}; {out['unsigned_differ']}"
                   f" of {out['unsigned']} unsigned answers differ from the genuine model)")
        elif out["unsigned"]:
            fs.add("warn", "missing_receipts", f"{out['unsigned']} submitted answer(s) "
                   f"without a valid receipt from {len(test['clients_rejecting'])} client(s); "
                   f"below the quorum of {quorum} independent clients")
    elif out["invalid_receipts"]:
        fs.add("warn", "traffic", f"{out['invalid_receipts']} submitted answer(s) without a "
               "valid receipt (ignored: they prove nothing)")
    return out
