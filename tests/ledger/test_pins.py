"""A home whose ``pins.json`` vanished is refused until the user re-trusts its chain.

Before, the next command re-created the pins from whatever chain was there: dropping the
head block and deleting ``pins.json`` let ``reindex`` and ``check`` pass over an erased
transition. Now writes, ``check`` and ``reindex`` exit 1 naming the missing file, and
``mltrail ledger trust --i-accept-unverifiable-history`` re-pins after re-executing the
chain, with a warning naming what is lost (and what the index still remembers).
"""

from __future__ import annotations

import random

from mltrail.testing.ledger_row_forgeries import pins_deleted


def _populate(open_as, tmp_path):
    steward = open_as("steward")
    ds = steward.register("dataset", "sha256:" + "dd" * 32, name="data").artefact_id
    steward.transition(ds, "validated")
    steward.close()
    (tmp_path / "w.bin").write_bytes(b"w")
    return ds


def _seed(cut: int, index: bool) -> int:
    """A seed of the pins_deleted forger that cuts ``cut`` blocks, deleting the index or not."""
    for seed in range(200):
        rng = random.Random(seed)
        if rng.randint(0, 2) == cut and (rng.random() < 0.5) == index:
            return seed
    raise AssertionError


def test_erased_transition_is_refused_until_trusted_with_a_warning(home, open_as, cli,
                                                                   tmp_path):
    ds = _populate(open_as, tmp_path)
    forged = pins_deleted(home, random.Random(_seed(1, False)))  # the 'validated' block goes
    assert "cut back 1" in forged.what
    for args in (["ledger", "reindex"], ["ledger", "check"],
                 ["--as", "steward", "register", str(tmp_path / "w.bin"), "--kind", "dataset"]):
        r = cli(*args, home=home.root)
        assert r.code == 1 and "pins.json is missing" in r.err, (args, r.code, r.err)
        assert "ledger trust --i-accept-unverifiable-history" in r.err
    assert not home.pins_path.exists()
    r = cli("ledger", "trust", home=home.root)
    assert r.code == 2 and "--i-accept-unverifiable-history" in r.err
    assert not home.pins_path.exists()
    r = cli("ledger", "trust", "--i-accept-unverifiable-history", "--json", home=home.root)
    assert r.code == 0, r.err
    assert "warning: the index had seen block" in r.err and "blocks were removed" in r.err
    assert "cut back or rewritten" in r.err
    assert home.pins_path.exists()
    # the user chose to trust this chain: the index, ahead of it, is what check names now
    r = cli("ledger", "check", home=home.root)
    assert r.code == 1 and "index" in r.err, r.err
    assert cli("ledger", "reindex", home=home.root).code == 0
    assert cli("ledger", "check", home=home.root).code == 0
    assert cli("show", ds, "--json", home=home.root).json()["state"] == "registered"


def test_trust_with_nothing_left_warns_and_a_pinned_home_has_nothing_to_retrust(home, open_as,
                                                                               cli, tmp_path):
    _populate(open_as, tmp_path)
    r = cli("ledger", "trust", "--i-accept-unverifiable-history", home=home.root)
    assert r.code == 2 and "nothing to re-trust" in r.err, r.err
    pins_deleted(home, random.Random(_seed(0, True)))
    r = cli("ledger", "trust", "--i-accept-unverifiable-history", home=home.root)
    assert r.code == 0 and "warning:" in r.err and "index had seen" not in r.err, r.err
    r = cli("--as", "steward", "register", str(tmp_path / "w.bin"), "--kind", "dataset",
            home=home.root)
    assert r.code == 0, r.err
    assert cli("ledger", "check", home=home.root).code == 0
