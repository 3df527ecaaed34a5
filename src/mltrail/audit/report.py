"""Audit reports: canonical JSON bytes and a self-contained HTML page with inline plots.

The JSON is what goes into the content store and whose digest is the ledger evidence.
The HTML embeds its plots (matplotlib, Agg backend) as base64 PNGs: the sequential
tests' evidence against the number of queries, per-class robustness and the latency
histogram. This module renders; it never runs checks.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Any

from mltrail.provenance.digest import canonical_json


def to_json_bytes(report: dict[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, compact): the bytes whose digest is recorded."""
    return canonical_json(_finite(report))


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plot_sequential(seq: dict[str, Any]) -> str | None:
    """Log-evidence of every sequential test against queries, with its threshold."""
    plt = _pyplot()

    if not any(s.get("path") for s in seq.values()):
        return None
    fig, ax = plt.subplots(figsize=(7, 3.6))
    top = 3.0 * max(float(s["threshold"]) for s in seq.values())
    for i, (name, s) in enumerate(seq.items()):
        path = [v if v is not None else 0.0 for v in s.get("path") or []]
        if not path:
            continue
        color = f"C{i}"
        ax.plot(range(1, len(path) + 1), [min(max(v, -10.0), top) for v in path], color=color,
                label=name)
        ax.axhline(s["threshold"], color=color, ls="--", lw=0.8)
    ax.set_xlabel("observations (queries)")
    ax.set_ylabel("log evidence (e-value / LR)")
    ax.set_title("Sequential tests: log evidence against H0 (dashed: rejection threshold; "
                 "clipped to [-10, 3x threshold])", fontsize=10)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_robustness(rob: dict[str, Any]) -> str | None:
    plt = _pyplot()

    attacks = rob.get("attacks") or []
    if not attacks:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / len(attacks)
    for j, a in enumerate(attacks):
        per = a["per_class_median"]
        classes = sorted(per, key=int)
        vals = [per[c] if per[c] is not None else a["query_cap"] for c in classes]
        ax.bar([int(c) + j * width for c in classes], vals, width=width, label=a["attack"])
    ax.axhline(attacks[0]["query_cap"], color="k", ls=":", lw=0.8, label="query cap")
    ax.set_xlabel("class")
    ax.set_ylabel("median queries to flip")
    ax.set_title(f"Per-class robustness (ε = {attacks[0]['eps']})")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_latency(lat: dict[str, Any]) -> str | None:
    plt = _pyplot()

    values = lat.get("latencies_ms") or []
    if not values:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(values, bins=40, color="C2")
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        if lat.get(q) is not None:
            ax.axvline(lat[q], ls="--", lw=0.8, color="k")
            ax.text(lat[q], ax.get_ylim()[1] * 0.9, q[:3], fontsize=8)
    claim = lat.get("claim") or {}
    if claim.get("p95_ms"):
        ax.axvline(claim["p95_ms"], color="r", lw=1.2, label="claimed p95")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency (ms, from scheduled arrival)")
    ax.set_ylabel("requests")
    ax.set_title(f"Open-loop Poisson load at {lat['rate_qps']:g} q/s")
    return _png(fig)


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(_fmt(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict | list):
        return json.dumps(_finite(v), sort_keys=True)
    return str(v)


def to_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page (no external resources)."""
    r = report
    ok = r.get("verdict") == "pass"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>mltrail audit</title>",
        "<style>body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;"
        "padding:3px 8px;text-align:left;font-size:13px}.pass{color:#070}.fail{color:#b00}"
        "pre{background:#f6f6f6;padding:8px;overflow-x:auto;font-size:12px}</style></head><body>",
        "<h1>Inference-service audit</h1>",
        f"<h2 class='{'pass' if ok else 'fail'}'>Verdict: {html.escape(str(r.get('verdict')))}"
        "</h2>",
        _table([("target", r.get("target")),
                ("claimed model", (r.get("claimed") or {}).get("model_digest")),
                ("reference", r.get("reference")), ("queries", r.get("queries")),
                ("probes", r.get("probes")), ("probe set", r.get("probe_meta")),
                ("α (overall / per test)",
                                              f"{r.get('alpha')} / {r.get('alpha_per_test'):.4g}"),
                ("first alarm at query", r.get("first_alarm_at")),
                ("duration (s)", r.get("duration_s"))]),
        "<h3>Findings</h3><ul>",
    ]
    for f in r.get("findings", []):
        parts.append(f"<li class='{'fail' if f['severity'] == 'fail' else ''}'>"
                     f"[{html.escape(f['severity'])}] {html.escape(f['check'])}: "
                     f"{html.escape(f['message'])}</li>")
    parts.append("</ul>" if r.get("findings") else "<li>none</li></ul>")
    rec = r.get("receipts") or {}
    parts.append("<h3>Receipts</h3>" + _table([(k, rec.get(k)) for k in
                                               ("checked", "valid", "invalid", "missing")]))
    for ex in rec.get("bad_examples") or []:
        parts.append("<pre>" + html.escape(json.dumps(ex, indent=1, sort_keys=True)) + "</pre>")
    parts.append("<h3>Sequential tests</h3>")
    seq = r.get("sequential") or {}
    parts.append(_table([(n, {k: v for k, v in s.items() if k != "path"})
                         for n, s in seq.items()]))
    img = plot_sequential(seq)
    if img:
        parts.append(f"<img alt='sequential evidence' src='data:image/png;base64,{img}'>")
    if r.get("fixed_sample"):
        parts.append("<h3>Fixed-sample exact tests</h3>" +
                     _table(list(r["fixed_sample"].items())))
    if r.get("exact"):
        parts.append("<h3>Deterministic benchmarking</h3>" + _table(list(r["exact"].items())))
    if r.get("robustness"):
        rob = r["robustness"]
        parts.append("<h3>Robustness</h3>" + _table(
            [(k, rob[k]) for k in ("measured_score", "claimed_score", "meets_claim")] +
            [(a["attack"], {k: v for k, v in a.items() if k != "attack"})
             for a in rob["attacks"]]))
        img = plot_robustness(rob)
        if img:
            parts.append(f"<img alt='robustness' src='data:image/png;base64,{img}'>")
    if r.get("latency"):
        lat = r["latency"]
        parts.append("<h3>Latency</h3>" + _table([(k, v) for k, v in lat.items()
                                                  if k != "latencies_ms"]))
        img = plot_latency(lat)
        if img:
            parts.append(f"<img alt='latency histogram' src='data:image/png;base64,{img}'>")
    parts.append("</body></html>")
    return "\n".join(parts)
