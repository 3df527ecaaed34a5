"""Sample proof and audit reports and helpers that read rendered HTML as a person would
(shared by tests/render and the browser test of the report pages)."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

SEQ = {"identity": {"test": "SPRT", "n": 40, "rejected": True, "decided_at": 12,
                    "path": [0.3 * i for i in range(40)], "threshold": 4.6},
       "claims": {"test": "betting e-process", "n": 40, "rejected": False,
                  "path": [0.01 * i for i in range(40)], "threshold": 4.6}}
AUDIT = {"version": 3, "verdict": "fail", "target": "http://127.0.0.1:9", "queries": 40,
         "claimed": {"name": "digits-cnn", "model_digest": "sha256:" + "12" * 32},
         "alpha": 0.01, "alpha_per_test": 0.0025, "first_alarm_at": 12,
         "probes": {"benchmark": 40}, "probe_meta": {"kind": "benchmark", "n": 40},
         "receipts": {"checked": True, "valid": 39, "invalid": 1, "missing": 0,
                      "bad_examples": [{"index": 3, "why": "bad signature"}]},
         "sequential": SEQ, "power": {"target_power": 0.8, "tests": {
             "identity": {"n": 40, "needed": None, "effect": 0.3, "counts": True}}},
         "robustness": {"measured_score": 0.4, "attacks": [
             {"attack": "simba", "eps": 0.25, "query_cap": 60,
              "per_class_median": {"0": 12, "1": None}}]},
         "latency": {"rate_qps": 40, "latencies_ms": [5.0 + i % 7 for i in range(200)],
                     "p50_ms": 8.0, "p95_ms": 11.0, "p99_ms": 11.0, "claim": {"p95_ms": 20}},
         "findings": [{"severity": "fail", "check": "identity", "message": "labels differ"}],
         "skipped": [{"check": "stego", "reason": "no images"}], "duration_s": 1.5}
POL = {"format": "mltrail-pol-report/1", "verdict": "rejected", "reasons": ["replay: bad"],
       "bundle": "/tmp/b", "threshold": 0.01, "optim_threshold": 0.05, "q": 1, "r": 2,
       "verifier_seed": 3, "checks": [{"name": "replay", "ok": False, "detail": "bad"}],
       "challenge": {"seed": 3, "source": "ledger", "block_hash": "0x" + "cd" * 32},
       "tolerance": {"basis": "exact", "why": "same environment"},
       "r_rule": {"segments": 9, "pool": 8, "r": 2}, "replay_env": {"torch": "2.13"},
       "segments": [
           {"index": 0, "epoch": 0, "start_step": 0, "end_step": 10, "chosen": "top-q",
            "update_norm": 1.5, "error": 0.0, "ok": True},
           {"index": 3, "epoch": 1, "start_step": 30, "end_step": 40, "chosen": "random",
            "update_norm": 0.5, "error": math.inf, "ok": False},
           {"index": 5, "epoch": 1, "start_step": 50, "end_step": 60, "chosen": "random",
            "update_norm": 0.5, "error": 0.2, "optim_error": 0.01, "ok": False}],
       "curve": [{"step": 10 * i, "epoch": 0, "loss": 2.3 / (1 + i), "accuracy": i / 10,
                  "source": "verifier"} for i in range(6)]
       + [{"step": 10 * i, "epoch": 0, "loss": 2.0 / (1 + i), "source": "prover"}
          for i in range(6)]}



class Cells(HTMLParser):
    """The text of each innermost cell (td, dd, li) and of the whole fragment."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def text_of(html: str) -> str:
    p = Cells()
    p.feed(html)
    return "".join(p.text)


def cells(html: str) -> list[str]:
    """The text of every table cell and definition of the page's tables and lists."""
    body = re.sub(r"<svg.*?</svg>", "", html, flags=re.S)
    return [text_of(c) for c in re.findall(r"<(?:td|dd)>(.*?)</(?:td|dd)>", body, flags=re.S)]


def no_raw(html: str) -> None:
    for c in cells(html):
        assert not re.search(r"[{}\[\]]|None|True|False", c), c
