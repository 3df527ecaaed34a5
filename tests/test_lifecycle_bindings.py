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


OWNED = """
roles: [admin, dev, checker]
kinds:
  thing:
    initial: new
    register: [dev]
    parents: [thing, other]
    anchor: [checker]
    states: [new, good, bad, revoked]
    transitions:
      - {from: new, to: good, roles: [dev], by: owner_and_role}
      - {from: new, to: good, roles: [checker]}
      - {from: good, to: bad, by: owner}
  other:
    initial: a
    register: [dev]
    states: [a, revoked]
"""


def test_who_may_take_a_transition_parents_and_anchors() -> None:
    lc = lifecycle.parse(OWNED.encode())
    thing = lc.kind("thing")
    rule = thing.rule("new", "good")
    assert rule.roles == ("checker",) and rule.owner_roles == ("dev",) and not rule.owner
    assert thing.rule("good", "bad") == lifecycle.Rule(owner=True)
    assert not thing.rule("good", "new")
    assert lc.rule_value(rule) == 0b100 | 0b010 << lifecycle.OWNER_ROLES_SHIFT
    assert lc.rule_value(thing.rule("good", "bad")) == lifecycle.OWNER_FLAG
    keys, values, ids, configs, parents, anchors = lc.contract_tables()
    assert parents == [0b110, 0] and anchors == [0b100, 0]
    assert len(lc.tables_digest) == 32


@pytest.mark.parametrize("old, new, reason", [
    ("by: owner_and_role", "by: anyone", "by must be one of"),
    ("{from: new, to: good, roles: [checker]}", "{from: new, to: good}",
     "transition roles must be a non-empty list"),
    ("parents: [thing, other]", "parents: [thing, nope]", "unknown kind 'nope' in parents"),
    ("anchor: [checker]", "anchor: [boss]", "unknown role 'boss' in anchor"),
    ("anchor: [checker]", "anchor: checker", "anchor roles of thing must be a non-empty list"),
])
def test_bad_owner_rules_are_refused(old: str, new: str, reason: str) -> None:
    assert old in OWNED
    with pytest.raises(InputError, match=reason):
        lifecycle.parse(OWNED.replace(old, new, 1).encode(), "x.yaml")


def test_default_lifecycle_lets_pol_anchor_on_its_training_data() -> None:
    lc = lifecycle.load()
    assert "model_developer" in lc.kind("dataset").anchor
    assert "model_developer" in lc.kind("model").anchor
    assert lc.kind("model").parents == ("dataset", "model")
    assert lc.kind("service").parents == ("model",)
    assert lc.kind("model").rule("registered", "trained").owner_roles == ("model_developer",)
    assert lc.kind("model").rule("trained", "verified").roles == ("verifier",)


DUPLICATES = [
    # the case: the operator would have approved models
    ("roles: [admin]\nroles: [operator]\n", 2),
    ("kinds:\n  service:\n    initial: registered\n    initial: approved\n", 4),
    ("terminal: revoked\nkinds:\n  model:\n    transitions:\n"
     "      - {from: a, to: b, roles: [admin], roles: [operator]}\n", 5),
    ("kinds:\n  m: {}\n  m: {}\n", 3),
    ("base: &b {x: 1}\nkinds:\n  m:\n    <<: *b\n    x: 2\n", 5),
    ("__line__: 3\n", 1),
]


@pytest.mark.parametrize(("doc", "line"), DUPLICATES)
def test_duplicate_keys_are_refused_naming_the_line(doc: str, line: int) -> None:
    with pytest.raises(InputError, match=rf"lc\.yaml:{line + 1}: (duplicate|reserved) key"):
        lifecycle.parse(("version: 1\n" + doc).encode(), "lc.yaml")


def test_init_refuses_a_lifecycle_with_a_duplicate_key(tmp_path, cli) -> None:
    base = lifecycle.DEFAULT_PATH.read_text()
    doc = base.replace("terminal: revoked\n", "terminal: revoked\nterminal: retired\n", 1)
    assert doc != base
    path = tmp_path / "dup.yaml"
    path.write_text(doc)
    r = cli("init", "--lifecycle", str(path), home=tmp_path / "h" / ".mltrail")
    assert r.code == 2 and "duplicate key 'terminal'" in r.err, r.err
    assert not (tmp_path / "h" / ".mltrail" / "config.json").exists()
