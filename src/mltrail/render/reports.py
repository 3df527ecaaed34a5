"""The one renderer of proof and audit reports: dashboard pages and standalone HTML files.

Owns the jinja2 environment of the report bodies (``templates/pol.html``,
``templates/audit.html``), the standalone page around a body (one file: CSS inline,
plots inline SVG) and the filters every report cell goes through
(:func:`mltrail.render.values.value`). The node's pages wrap the same body in the
dashboard's frame; ``pol verify --html`` and the audit writers save the standalone page.
It renders a report's JSON as given: it never reads the ledger or the disk beyond its
own templates, and never changes a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, Undefined, select_autoescape
from markupsafe import Markup

from mltrail.render import charts, values

HERE = Path(__file__).parent
GOOD = {"approved", "verified", "deployed", "audited", "validated", "accepted", "pass"}
WARN = {"suspended", "deprecated", "inconclusive"}
BAD = {"revoked", "rejected", "fail"}

POL_KEYS = ("format", "verdict", "reasons", "bundle", "header_digest", "chain_head",
            "final_model", "data_digest", "threshold", "optim_threshold", "q", "r",
            "verifier_seed", "challenge", "init_origin", "prior_rejections", "checks",
            "segments", "replay_seconds", "total_seconds", "torch_threads", "device",
            "tolerance", "curve")
AUDIT_KEYS = ("verdict", "target", "claimed", "alpha", "alpha_per_test", "queries",
              "first_alarm_at", "findings", "receipts", "sequential", "duration_s")
AUDIT_SECTIONS = (("metrics", "Headline numbers"), ("claims_check", "Claims checked"),
                  ("reference", "Reference"), ("power", "Power: did the tests reach it?"),
                  ("probes", "Probes sent"), ("probe_meta", "Probe set"),
                  ("probe_check", "Probe provenance and validation"),
                  ("fixed_sample", "Fixed-sample exact tests"),
                  ("exact", "Deterministic benchmarking"), ("traffic", "Real traffic"),
                  ("availability", "Availability"), ("timing", "Timing"),
                  ("robustness", "Robustness"), ("latency", "Latency"),
                  ("skipped", "Parts that did not run"))


def badge(state: Any) -> Markup:
    s = "" if state is None or isinstance(state, Undefined) else str(state)
    tone = ("good" if s in GOOD else "warn" if s in WARN else "bad" if s in BAD
            else "muted" if s == "retired" else "info")
    return Markup('<span class="badge {}">{}</span>').format(tone, s or "—")


def _number(v: Any) -> str | Markup:
    if isinstance(v, int | float):
        return values.number(v)
    return values.value(v)  # not a number (a hostile or older report): shown as it is


def _shorten(v: Any) -> str:
    return "—" if v is None or isinstance(v, Undefined) else values.short(str(v))


def _value(v: Any, names: Mapping[str, str] | None = None) -> Markup:
    return values.value(v, names if isinstance(names, Mapping) else None)


def _lower(names: Mapping[str, str] | None) -> dict[str, str]:
    return {str(k).lower(): v for k, v in (names or {}).items()}


env = Environment(loader=FileSystemLoader(HERE / "templates"),
                  autoescape=select_autoescape(default=True, default_for_string=True))
env.filters.update(value=_value, number=_number, label=values.label, badge=badge,
                   shorten=_shorten)


def css(page: bool = False) -> Markup:
    """The reports' style sheet (with the page frame's when ``page``: standalone files)."""
    text = (HERE / "report.css").read_text()
    if page:
        text = (HERE / "page.css").read_text() + text
    return Markup(text)


def _list(v: Any) -> list[Any]:
    return list(v) if isinstance(v, list | tuple) else [] if v is None else [v]


def _rows(v: Any) -> list[Mapping[str, Any]]:
    """The mappings of a list (a report from elsewhere may hold anything)."""
    return [x for x in _list(v) if isinstance(x, Mapping)]


def _mapping(v: Any) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(x) else x


def pol_body(report: Mapping[str, Any], *, digest: str | None = None,
             cited: Mapping[str, Any] | None = None, about: Mapping[str, Any] | None = None,
             names: Mapping[str, str] | None = None, links: bool = False) -> Markup:
    """A Proof-of-Learning report (its JSON form) as the body of a page."""
    r = {k: None for k in POL_KEYS} | dict(report)
    r.update(reasons=_list(r["reasons"]), checks=_rows(r["checks"]))
    segs = _rows(r["segments"])
    errors = [e for e in (_num(s.get("error")) for s in segs) if e is not None]
    threshold = _num(r.get("threshold")) or 0.0
    charts_ = {"curve": charts.training_curve(_rows(r["curve"]), segs),
               "replay": charts.replay_errors(segs, threshold, _num(r.get("optim_threshold")))}
    rest = {k: v for k, v in report.items() if k not in POL_KEYS}
    return Markup(env.get_template("pol.html").render(
        r=r, segs=segs, max_error=max(errors, default=None), charts=charts_, rest=rest,
        digest=digest, cited=cited, about=about, names=_lower(names), links=links))


def audit_body(report: Mapping[str, Any], *, digest: str | None = None,
               cited: Mapping[str, Any] | None = None, about: Mapping[str, Any] | None = None,
               names: Mapping[str, str] | None = None, links: bool = False) -> Markup:
    """An audit report (its JSON form) as the body of a page."""
    r = {k: None for k in AUDIT_KEYS} | {k: None for k, _ in AUDIT_SECTIONS} | dict(report)
    seq = {str(k): v for k, v in _mapping(r["sequential"]).items() if isinstance(v, Mapping)}
    r.update(sequential=seq, findings=_rows(r["findings"]), receipts=_mapping(r["receipts"]),
             claimed=_mapping(r["claimed"]))
    charts_ = {"sequential": charts.sequential(seq),
               "robustness": charts.robustness(r["robustness"])
               if isinstance(r.get("robustness"), Mapping) else Markup(""),
               "latency": charts.latency(r["latency"])
               if isinstance(r.get("latency"), Mapping) else Markup("")}
    known = set(AUDIT_KEYS) | {k for k, _ in AUDIT_SECTIONS}
    rest = {k: v for k, v in report.items() if k not in known}
    return Markup(env.get_template("audit.html").render(
        r=r, charts=charts_, sections=AUDIT_SECTIONS, rest=rest, digest=digest, cited=cited,
        about=about, names=_lower(names), links=links))


def standalone(title: str, body: Markup) -> str:
    """A self-contained HTML page around a report body (no external resources)."""
    return env.get_template("standalone.html").render(
        title=title, body=body, page_css=css(page=True), report_css=Markup(""))


def pol_html(report: Mapping[str, Any]) -> str:
    """A proof report as one standalone HTML file."""
    return standalone(f"Proof {report.get('verdict')} · Proof-of-Learning report",
                      pol_body(report))


def audit_html(report: Mapping[str, Any]) -> str:
    """An audit report as one standalone HTML file."""
    return standalone(f"Inference-service audit · Verdict: {report.get('verdict')}",
                      audit_body(report))
