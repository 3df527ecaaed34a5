"""Dishonest clients: submissions made up to frame an honest provider.

Reasoning: "The auditor now counts answers without a valid receipt against the
provider. I am a client (or a competitor posing as several): I take my genuine
exchanges, strip the receipt and change the answer, or invent exchanges outright, and
submit them as 'unsigned answers'." Nothing here can forge a receipt; what the liars
test is whether unsigned evidence from a few clients can move a verdict
(:func:`mltrail.audit.evidence.missing_receipt_test` requires a quorum of distinct
clients). Used by the tests and bench/audit.py; nothing in the auditor imports it.
"""

from __future__ import annotations

import secrets

import numpy as np

from mltrail.audit.traffic import Submission, SubmittedRequest


def strip_and_alter(s: Submission, rng: np.random.Generator,
                    client: str | None = None) -> Submission:
    """A genuine exchange with its receipt removed and its first label changed."""
    resp = dict(s.response or {})
    outs = [dict(o) for o in resp.get("outputs") or []]
    if outs:
        k = len(outs[0]["probs"])
        lab = (int(outs[0]["label"]) + 1 + int(rng.integers(0, k - 1))) % k
        outs[0] = {"label": lab, "probs": [1.0 if i == lab else 0.0 for i in range(k)]}
    resp.update(outputs=outs, receipt=None)
    return s.model_copy(update={"response": resp, "client": client or s.client})


def fabricate(service: str, x: np.ndarray, rng: np.random.Generator, *,
              client: str | None = None, classes: int = 10, now_ms: int = 0) -> Submission:
    """An exchange that never happened: inputs ``x``, random one-hot answers, no receipt."""
    labels = rng.integers(0, classes, len(x))
    outputs = [{"label": int(lab), "probs": [1.0 if i == lab else 0.0 for i in range(classes)]}
               for lab in labels]
    return Submission(service=service, status=200,
                      request=SubmittedRequest(inputs=x.reshape(len(x), -1).tolist(),
                                               nonce=secrets.token_hex(16)),
                      response={"model_digest": "sha256:" + "0" * 64, "outputs": outputs,
                                "receipt": None},
                      sent_at_ms=now_ms, received_at_ms=now_ms + 5, client=client)
