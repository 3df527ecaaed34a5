"""The one renderer: standalone proof and audit reports are one file with their plots
inline, every cell typed; lifecycles are laid out by dot, with a clear note without it."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrail.lifecycle import load
from mltrail.render import graph, reports
from reportkit import AUDIT, POL, no_raw


def test_standalone_audit_report_is_one_file_with_its_plots() -> None:
    html = reports.audit_html(AUDIT)
    assert html.startswith("<!doctype html>") and "Verdict: fail" in html
    for cls in ("sequential", "robustness", "latency"):
        assert f'<figure class="plot {cls}"><svg' in html
    assert "<img" not in html and "<link" not in html and "<script" not in html
    assert "bad signature" in html and "no images" in html  # nested values, as cells
    no_raw(html)


def test_standalone_pol_report_has_curve_and_replay_error() -> None:
    html = reports.pol_html(POL)
    assert "Proof rejected" in html
    assert '<figure class="plot curve"><svg' in html
    assert '<figure class="plot replay-error"><svg' in html
    replay = html[html.index('class="plot replay-error"'):]
    assert ">exact<" in replay and ">failed<" in replay  # error 0 and ∞ still drawn
    assert "recorded by the prover (not checked)" in html
    assert "computed by the verifier" in html
    assert "Everything else in the report" in html and "r rule" in html
    no_raw(html)


def test_a_report_without_segments_says_so() -> None:
    html = reports.pol_html({**POL, "segments": [], "curve": []})
    assert "No segment was replayed" in html and "No training curve" in html
    assert "<svg" not in html


def test_lifecycle_is_laid_out_by_dot_with_a_note_without_it(monkeypatch) -> None:
    lc = load()
    svg = graph.lifecycle(lc.kind("model"), "verified", lc.terminal)
    assert svg.startswith('<svg class="lifecycle"')
    assert re.search(r'data-state="verified" class="node state current"', svg)
    assert svg.count('class="node state next"') == 1  # approved; revoked stays terminal
    monkeypatch.setattr(graph.shutil, "which", lambda _: None)
    graph._dot_svg.cache_clear()
    note = graph.lifecycle(lc.kind("model"), "verified", lc.terminal)
    graph._dot_svg.cache_clear()
    assert "<svg" not in note and "Graphviz" in note and "verified → approved" in note


@pytest.mark.parametrize("state", ["registered", "revoked"])
def test_every_state_is_drawn_once(state: str) -> None:
    lc = load()
    kind = lc.kind("service")
    svg = graph.lifecycle(kind, state, lc.terminal)
    assert sorted(re.findall(r'data-state="([^"]+)"', svg)) == sorted(kind.states)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                    | st.text(alphabet="abcxyz0123 .:-_", max_size=12),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(["index", "error", "ok", "step", "loss",
                                                       "path", "threshold", "name", "x"]),
                                      kids, max_size=5), max_leaves=12)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries({}, optional={k: JSON for k in (
    "verdict", "reasons", "checks", "segments", "curve", "threshold", "q", "challenge",
    "sequential", "findings", "receipts", "claimed", "robustness", "latency", "queries")}))
def test_a_report_from_elsewhere_of_any_shape_renders_without_a_repr(doc) -> None:
    """Reports come from other organisations: whatever their fields hold, the page
    renders and no cell shows a dict or list repr."""
    for html in (reports.pol_html(doc), reports.audit_html(doc)):
        no_raw(html)
