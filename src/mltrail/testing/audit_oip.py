"""Cheaters that play on the protocols an auditor speaks (outside the recipe the audit
was built against: fresh probes and hidden batches were designed on mltrail's own API).

* :class:`SplitBrain` — "The auditor probes one door; my customers use another. I serve
  the genuine model on the door the auditor knocks at (``honest_on``) and the substitute
  on the others (mltrail's /v1, v2, the TF-Serving-style route an adapter file
  describes)." Caught whenever the audit targets the endpoint the claims name and the
  cheater substitutes there; an audit of another door says nothing about it (the report
  names the protocol it audited).
* :class:`OipSniffer` — "Auditors write their own v2 clients. I look for what ordinary
  clients do not send: an ``id`` that is not 32 lowercase hex digits (or none), request
  ``parameters``, an explicit ``outputs`` list, nested ``data``, a datatype other than
  the metadata's, a batch of a power-of-two size of 8 or more, an ``id`` seen before.
  Those get the genuine model; everyone else the substitute."
* :class:`RowRotate` — "Batches are expensive; I answer each batch from a cache keyed on
  its first input and shift the rows" (rows answered for the wrong inputs).
* :class:`HalfPrecision` — "I run the genuine weights in float16 (half the memory and
  much cheaper on my accelerator) and sign what I send": a quantised substitute.
* :class:`Reorder` — not a cheat: the genuine model with the v2 output tensors in the
  other order and ``probs`` declared FP32. An auditor must accept it (false-alarm check).

Run one as a process with ``python -m mltrail.testing.audit_oip NAME MODEL --cheap-model
...``. Nothing in the auditor imports from here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mltrail.testing.audit_base import Cheat, Decision, main


def _all(batch: np.ndarray, genuine: bool) -> Decision:
    return Decision(np.full(len(batch), genuine, dtype=bool))


@dataclass
class SplitBrain(Cheat):
    name: str = "splitbrain"
    honest_on: str = "oip"          # "oip", "mltrail" or "tf"

    def decide(self, batch: np.ndarray, nonce: str | None, now: float) -> Decision:
        return _all(batch, self.honest_on == "mltrail")

    def decide_oip(self, batch: np.ndarray, request: dict[str, Any], now: float) -> Decision:
        return _all(batch, self.honest_on == "oip")

    def decide_tf(self, batch: np.ndarray, request: dict[str, Any], now: float) -> Decision:
        return _all(batch, self.honest_on == "tf")


HEX = set("0123456789abcdef")


@dataclass
class OipSniffer(Cheat):
    name: str = "oipsniffer"
    seen: set[str] = field(default_factory=set)

    def audit_like(self, request: dict[str, Any]) -> bool:
        rid = request.get("id")
        t = (request.get("inputs") or [{}])[0]
        data = t.get("data") if isinstance(t, dict) else None
        shape = t.get("shape") if isinstance(t, dict) else None
        n = shape[0] if isinstance(shape, list) and shape else 0
        flags = [
            not isinstance(rid, str) or len(rid) != 32 or not set(rid) <= HEX,
            "parameters" in request, "outputs" in request,
            isinstance(data, list) and bool(data) and isinstance(data[0], list),
            isinstance(t, dict) and t.get("datatype") != "FP32",
            isinstance(n, int) and n >= 8 and n & (n - 1) == 0,
            isinstance(rid, str) and rid in self.seen,
        ]
        if isinstance(rid, str):
            self.seen.add(rid)
        return any(flags)

    def decide_oip(self, batch: np.ndarray, request: dict[str, Any], now: float) -> Decision:
        probe = self.audit_like(request)
        self.note(probe, len(batch))
        return _all(batch, probe)


@dataclass
class RowRotate(Cheat):
    name: str = "rowrotate"

    def transform(self, probs: np.ndarray) -> np.ndarray:
        return np.roll(probs, 1, axis=0) if len(probs) > 1 else probs


@dataclass
class HalfPrecision(Cheat):
    name: str = "halfprecision"

    def transform(self, probs: np.ndarray) -> np.ndarray:
        half = probs.astype(np.float16).astype(np.float64)
        return np.asarray(half / half.sum(1, keepdims=True))


@dataclass
class Reorder(Cheat):
    name: str = "reorder"

    def shape_oip(self, body: dict[str, Any]) -> dict[str, Any]:
        outs = list(reversed(body["outputs"]))
        for o in outs:
            if o["name"] == "probs":
                o["datatype"] = "FP32"
        return {**body, "outputs": outs}


CHEATS: dict[str, type[Cheat]] = {"splitbrain": SplitBrain, "oipsniffer": OipSniffer,
                                  "rowrotate": RowRotate, "halfprecision": HalfPrecision,
                                  "reorder": Reorder}

if __name__ == "__main__":
    main(CHEATS[sys.argv[1]](), sys.argv[2:])
