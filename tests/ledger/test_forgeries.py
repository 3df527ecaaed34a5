"""Every forgery family of ``mltrail.testing.ledger_forgeries`` against ``ledger check``, a
few fixed seeds each, on fresh copies of one populated home (rates over many seeds:
``bench/ledger_forgeries.py``)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from mltrail.config import Home
from mltrail.testing.ledger_forgeries import FORGERS, PASSWORD, attempt, fresh_copy, populate
from testkit import make_home

SEEDS = (3, 8)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = make_home(tmp_path_factory.mktemp("template"))
    populate(home, PASSWORD, random.Random(7))
    return home.root


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("family", sorted(FORGERS))
def test_forgery_is_detected_where_it_happened(template: Path, tmp_path: Path, family: str,
                                               seed: int) -> None:
    home = fresh_copy(template, tmp_path / ".mltrail")
    outcome = attempt(family, home, seed, PASSWORD)
    what = f"{family} seed {seed}: {outcome.forged.what} -> {outcome.message!r}"
    assert not outcome.misplaced, what  # a chain forgery is never blamed on the index
    if outcome.forged.limit:  # the attacker rewrote pins.json too: a documented limit
        return
    assert outcome.detected, what
    if outcome.forged.layer == "chain":
        assert "ledger damaged" in outcome.message and "reindex" not in outcome.message, what


def test_seed_picks_what_is_forged(template: Path, tmp_path: Path) -> None:
    """The forger is a distribution, not one recipe: seeds pick different targets."""
    seen = set()
    for seed in range(4):
        home = fresh_copy(template, tmp_path / str(seed) / ".mltrail")
        seen.add(FORGERS["index_cell"](home, random.Random(seed)).what)
        shutil.rmtree(home.root.parent)
    assert len(seen) >= 3


def test_pins_forged_with_the_history_is_the_documented_limit(template: Path,
                                                             tmp_path: Path) -> None:
    """With the keys in the home and pins.json rewritten, a rewritten history passes:
    what docs/ledger.md says pins cannot defend against."""
    for seed in range(6):
        home = fresh_copy(template, tmp_path / str(seed) / ".mltrail")
        outcome = attempt("history_truncated", home, seed, PASSWORD)
        if outcome.forged.limit:
            assert not outcome.detected, outcome.message
            assert Home(home.root).pins() is not None
            return
        assert outcome.detected
    pytest.fail("no seed in 0..5 forged the pins")
