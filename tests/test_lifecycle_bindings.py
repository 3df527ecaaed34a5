"""Lifecycle bindings: features name kinds and states through the YAML, checked at parse."""

from __future__ import annotations

import pytest

from mltrail import lifecycle
from mltrail.errors import InputError

BASE = """
roles: [admin, dev]
kinds:
  thing:
    initial: new
    register: [dev]
    states: [new, good, bad, revoked]
    transitions:
      - {from: new, to: good, roles: [admin]}
  other:
    initial: a
    register: [dev]
    states: [a, revoked]
"""


def test_default_lifecycle_binds_pol_and_audit() -> None:
    lc = lifecycle.load()
    assert lc.bound_kind("pol") == "model"
    assert lc.bound_kind("pol", "data_kind") == "dataset"
    assert lc.bound_state("pol", "rejected") == "rejected"
    assert lc.bound_state("audit", "suspended") == "suspended"


def test_custom_bindings_parse() -> None:
    doc = BASE + ("bindings:\n"
                  "  pol: {kind: thing, data_kind: other, verified: good, rejected: bad}\n")
    lc = lifecycle.parse(doc.encode())
    assert lc.bound_state("pol", "verified") == "good"
    with pytest.raises(InputError, match="no binding pol.trained"):
        lc.bound_state("pol", "trained")
    with pytest.raises(InputError, match="no binding audit.kind"):
        lc.bound_kind("audit")


@pytest.mark.parametrize("bad, reason", [
    ("bindings: [1]\n", "bindings must be a mapping"),
    ("bindings:\n  pol: {verified: good}\n", "must be a mapping with a kind"),
    ("bindings:\n  pol: {kind: nope}\n", "unknown kind 'nope'"),
    ("bindings:\n  pol: {kind: thing, data_kind: nope}\n", "unknown kind 'nope'"),
    ("bindings:\n  pol: {kind: thing, verified: nope}\n", "thing has no state 'nope'"),
    ("bindings:\n  pol: {kind: thing, verified: 3}\n", "must be a name"),
])
def test_bad_bindings_are_refused_with_line(bad: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        lifecycle.parse((BASE + bad).encode(), "x.yaml")
